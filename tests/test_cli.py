from portal.extensions import db
from portal.models import Merchant, User


def test_create_merchant_and_user_then_reset_password(app, client):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["merchant", "create", "Nordic Bikes ApS"])
    assert "Created merchant" in result.output
    with app.app_context():
        merchant_id = db.session.scalar(db.select(Merchant.id).where(Merchant.name == "Nordic Bikes ApS"))
    result = runner.invoke(args=["user", "create", "anna@bikes.test", "--merchant", str(merchant_id), "--admin"])
    assert result.exit_code == 0, result.output
    password = result.output.split("Password (shown once): ")[1].strip()
    assert len(password) >= 12
    result = runner.invoke(args=["user", "reset-password", "anna@bikes.test", "--password", "a brand new passphrase"])
    assert result.exit_code == 0, result.output
    from .helpers import login

    assert login(client, "anna@bikes.test", password).status_code == 200  # the old one no longer works
    assert login(client, "anna@bikes.test", "a brand new passphrase").status_code == 302


def test_cli_refuses_bad_input_clearly(app, account):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["user", "create", "x@y.test", "--merchant", "999"])
    assert result.exit_code != 0 and "No merchant has the id 999" in result.output
    result = runner.invoke(args=["user", "create", account.email, "--merchant", str(account.merchant_id)])
    assert result.exit_code != 0 and "exists already" in result.output
    result = runner.invoke(args=["user", "reset-password", account.email, "--password", "short"])
    assert result.exit_code != 0 and "at least 12 characters" in result.output
    result = runner.invoke(args=["merchant", "create", "  "])
    assert result.exit_code != 0 and "needs a name" in result.output
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 1


def test_first_start_creates_one_merchant_and_admin_only_once(app):
    from portal.auth.services import bootstrap_first_admin

    with app.app_context():
        first = bootstrap_first_admin("ops@shop.test", None, "Shop ApS")
        assert first.user.email == "ops@shop.test" and first.merchant.name == "Shop ApS"
        assert len(first.password) >= 12
        assert bootstrap_first_admin("other@shop.test", None, None) is None
        assert db.session.scalar(db.select(db.func.count()).select_from(Merchant)) == 1
