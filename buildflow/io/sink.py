"""What sink primitives share: the row type that fixes a table's columns.

A table's columns come from ``.options(schema=RowType)`` or, when that is not given, from the
return type of the collector that writes to it (the runtime reads ``schema`` the same way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from buildflow.io.primitive import Primitive, PrimitiveValidationError

if TYPE_CHECKING:
    from buildflow.types.schema import Column


class TableSchema(Primitive):
    """Base of table primitives: a ``schema`` option and its columns as plan properties.

    ``schema`` is a class attribute, not a dataclass field, so the constructor keeps
    BuildFlow's positional order; ``.options(schema=...)`` sets it on the instance.
    """

    schema: Any = None

    def options(self, **kwargs: Any) -> Self:
        super().options(**kwargs)
        self.validate()
        return self

    def check_schema(self) -> None:
        """Refuse a schema the sinks cannot make columns from, naming the primitive."""
        if self.schema is None:
            return
        from buildflow.types.schema import schema_from_type

        try:
            schema_from_type(self.schema)
        except TypeError as e:
            raise PrimitiveValidationError(f"{type(self).__name__} schema: {e}") from None

    def columns(self) -> list[Any] | None:
        """The declared columns (``buildflow.types.schema.Column``), or None when undeclared."""
        if self.schema is None:
            return None
        from buildflow.types.schema import schema_from_type

        return schema_from_type(self.schema)

    def schema_properties(self) -> list[str] | None:
        """The declared columns as plan properties, e.g. ``["page STRING", "n INTEGER"]``."""
        columns = self.columns()
        return None if columns is None else [self.describe_column(c) for c in columns]

    def describe_column(self, column: Column) -> str:
        """How the plan shows ``column``: a table that nests records overrides this, so the plan
        names the type the table gets rather than the JSON the other stores keep."""
        return column.describe()

    def declare_row_type(self, row_type: Any) -> None:
        """Take the columns from a collector's row type unless a schema was given.

        Called when a collector writing to this table is declared, so plans show the columns
        and apply creates the table before the first row arrives.
        """
        if self.schema is None and isinstance(row_type, type):
            from buildflow.types.schema import is_record_type

            if is_record_type(row_type):
                self.schema = row_type
                self.check_schema()
