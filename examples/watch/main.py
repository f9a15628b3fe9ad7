"""Files dropped in a folder become rows: every JSON file that lands in ``incoming/`` is read
and its records go to a CSV file sink. Files dropped while nothing runs are read at the next
start; each is read once."""

import dataclasses
import json

from buildflow import Flow
from buildflow.io.local import File, LocalFileChangeStream
from buildflow.types.local import LocalFileChangeEvent
from buildflow.types.portable import FileFormat

app = Flow()


@dataclasses.dataclass
class Reading:
    sensor: str
    value: float
    source: str


@app.consumer(source=LocalFileChangeStream("incoming"), sink=File("rows/readings.csv", FileFormat.CSV))
def read_file(event: LocalFileChangeEvent) -> list[Reading]:
    """One row per record of the file; a file that is not JSON fails and is retried, never lost."""
    records = json.loads(event.blob)
    return [Reading(sensor=r["sensor"], value=float(r["value"]), source=event.file_path) for r in records]


if __name__ == "__main__":
    app.run()
