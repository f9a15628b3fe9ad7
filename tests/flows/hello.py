from buildflow import Flow

app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
def hello() -> str:
    return "hello"
