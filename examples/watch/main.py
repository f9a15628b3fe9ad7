"""Files dropped in a folder become rows: every JSON file that lands in ``incoming/`` is read
and its records go to a CSV file sink. Files dropped while nothing runs are read at the next
start; each is read once. Files already in ``incoming/`` when ``bfctl apply`` made the stream
are not read (BuildFlow watched from start-up too)."""

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
    """One row per record of the file. A file that is not JSON fails: it is tried again later each
    time (1 s, 2 s, 4 s... up to a minute apart), and after 10 tries set aside, named in the log,
    until it is written again."""
    records = json.loads(event.blob)
    return [Reading(sensor=r["sensor"], value=float(r["value"]), source=event.file_path) for r in records]


if __name__ == "__main__":
    app.run()
