from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(Scope.PROCESS)
class Cart:
    def __init__(self, prices: "Prices") -> None:
        self.prices = prices


@dependency(Scope.PROCESS)
class Prices:
    def __init__(self, cart: Cart) -> None:
        self.cart = cart


app = Flow()
service = app.service()


@service.endpoint("/cart", method="GET")
def cart(cart: Cart) -> str:
    return "ok"
