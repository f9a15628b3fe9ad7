from main import Greetings, app

from bfctl.testing import TestClient


class PirateGreetings:
    def __init__(self) -> None:
        self.templates = {"en": "Ahoy, {}!"}


def test_greet_in_french() -> None:
    with TestClient(app) as client:
        response = client.get("/greet/Ann", headers={"Accept-Language": "fr"})
        assert response.json() == "Bonjour, Ann !"


def test_greet_with_an_override() -> None:
    with TestClient(app, overrides={Greetings: PirateGreetings}) as client:
        assert client.get("/greet/Ann").json() == "Ahoy, Ann!"
