from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from .services import AccountError, check_password_strength


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Sign in")


def strong_enough(form, field) -> None:
    try:
        check_password_strength(field.data or "")
    except AccountError as error:
        raise ValidationError(str(error)) from error


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=1024), strong_enough])
    new_password_again = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new_password", message="The two new passwords are not the same.")],
    )
    submit = SubmitField("Change password")


class ConfirmPasswordForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Confirm")


class AcceptInvitationForm(FlaskForm):
    password = PasswordField("Choose a password", validators=[DataRequired(), Length(max=1024), strong_enough])
    password_again = PasswordField(
        "The password again",
        validators=[DataRequired(), EqualTo("password", message="The two passwords are not the same.")],
    )
    submit = SubmitField("Join")
