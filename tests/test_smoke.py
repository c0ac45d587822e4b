from deepprs.cli.main import app


def test_app_has_name():
    assert app.info.name == "deepprs"
