"""Alembic's environment for this database, run by bfctl (`bfctl db ...`, `bfctl apply`).

bfctl builds Alembic's configuration in code and passes an open connection to the stack's
database and the flow's SQLAlchemy metadata (the database's `metadata=` option), so the
project needs no alembic.ini. bfctl commits each revision in a transaction of its own.
"""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=context.config.attributes.get("target_metadata"),
)
with context.begin_transaction():
    context.run_migrations()
