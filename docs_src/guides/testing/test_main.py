from main import Weather, app

from bfctl.testing import TestClient


class SunnyWeather:
    def today(self, city: str) -> str:
        return "sunny"


def test_forecast_with_a_fake_weather():
    with TestClient(app, overrides={Weather: SunnyWeather}) as client:
        response = client.get("/forecast/Oslo")
    assert response.status_code == 200
    assert response.json() == {"city": "Oslo", "sky": "sunny"}


def test_unknown_route_is_a_404():
    with TestClient(app, overrides={Weather: SunnyWeather}) as client:
        assert client.get("/forecast").status_code == 404
