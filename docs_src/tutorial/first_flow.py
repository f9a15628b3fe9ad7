from buildflow import Flow

app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
def hello(name: str = "world") -> str:
    return f"Hello, {name}!"


@service.endpoint("/items/{item_id}", method="GET")
def item(item_id: int) -> dict:
    return {"id": item_id, "double": item_id * 2}


if __name__ == "__main__":
    app.run()
