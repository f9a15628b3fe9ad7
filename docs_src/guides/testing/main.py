from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(scope=Scope.REPLICA)
class Weather:
    """Asks a weather service; tests swap it for a fixed answer."""

    def today(self, city: str) -> str:
        raise RuntimeError("no network in this example")


app = Flow()
service = app.service()


@service.endpoint("/forecast/{city}", method="GET")
def forecast(city: str, weather: Weather) -> dict:
    return {"city": city, "sky": weather.today(city)}
