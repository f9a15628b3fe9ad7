"""``File`` sinks on the local target: the folder the files go in.

The files are the app's output, the user's data: destroy never deletes them. It removes only
the folders apply created, and only when they are empty.
"""

from __future__ import annotations

from pathlib import Path

from bfctl.providers.local.family import Family
from bfctl.providers.state import ResourceState, State, record
from buildflow.io.local import File
from buildflow.io.primitive import Primitive
from buildflow.storage.engines import Engine


class FileFamily(Family):
    primitive_types = (File,)

    def put(self, state: State, primitive: Primitive) -> str:
        assert isinstance(primitive, File)
        path = self.absolute(primitive.file_path)
        made, missing = self.make_folder(state, primitive.primitive_id(), path.parent)
        outputs = {
            "engine": Engine.FILE,
            "path": str(path),
            "format": primitive.file_format.value,
            "directory": str(path.parent),
        }
        record(state, primitive, primitive.desired_properties(), outputs, {"made_dirs": made})
        return f"folder {self.relative(path.parent)} {'created' if missing else 'exists'}"

    def delete(self, state: State, rec: ResourceState, doomed: set[str]) -> str:
        directory = Path(rec.outputs["directory"])
        kept = sum(1 for p in directory.iterdir() if p.is_file()) if directory.is_dir() else 0
        self.remove_made_folders(rec)
        del state.resources[rec.resource_id]
        return f"{kept} file(s) written by the app kept in {self.relative(directory)}" if kept else "nothing to keep"
