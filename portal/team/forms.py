from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, SelectChoice, SubmitField
from wtforms.validators import DataRequired, Length

from ..models import Role
from .services import INVITABLE_ROLES


class InviteForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    role = RadioField("Role", choices=[SelectChoice(role.value, role.label) for role in INVITABLE_ROLES], default=Role.MEMBER.value,
                      validators=[DataRequired()])
    submit = SubmitField("Make an invitation link")
