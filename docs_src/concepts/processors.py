import dataclasses
import json
from pathlib import Path

from buildflow import Flow
from buildflow.io.local import File
from buildflow.types.portable import FileFormat

app = Flow()
service = app.service()

visits = File("visits.jsonl", FileFormat.JSON)


@dataclasses.dataclass
class Visit:
    page: str
    user: str


# a collector: a request in, rows out to a sink; the client gets {"success": true}
@app.collector("/visits", method="POST", sink=visits)
def collect(visit: Visit) -> Visit:
    return visit


# an endpoint: a request in, a response out; it reads what the collector wrote, one file per
# worker process (visits-<id>.jsonl)
@service.endpoint("/pages", method="GET")
def pages() -> list:
    lines = [line for path in Path().glob("visits-*.jsonl") for line in path.read_text().splitlines()]
    return sorted(json.loads(line)["page"] for line in lines)
