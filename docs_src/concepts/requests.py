from buildflow import Flow
from buildflow.exceptions import HTTPException
from buildflow.middleware import SessionMiddleware
from buildflow.requests import Form, Request, UploadFile
from buildflow.secrets import Secret

app = Flow()
service = app.service()
service.add_middleware(SessionMiddleware, secret_key=Secret("session-key"))


@service.endpoint("/photos", method="POST")
async def upload(photo: UploadFile, rating: int = Form(...), caption: str = Form("")) -> dict:
    return {"name": photo.filename, "size": photo.size, "rating": rating, "caption": caption}


@service.endpoint("/visits", method="GET")
def visits(request: Request) -> dict:
    request.session["count"] = request.session.get("count", 0) + 1
    return {"visits": request.session["count"]}


@service.endpoint("/teapot", method="GET")
def teapot() -> str:
    raise HTTPException(418, "short and stout")


@service.endpoint("/counter", method="POST")
class Counter:
    """A class: `setup()` once per worker, `process()` per request, `teardown()` at shutdown."""

    def setup(self) -> None:
        self.count = 0

    def process(self) -> dict:
        self.count += 1
        return {"count": self.count}
