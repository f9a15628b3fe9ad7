"""tests/flows/hello.py on FastAPI: ``GET /hello`` answers the JSON string ``"hello"``."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
def hello() -> str:
    return "hello"
