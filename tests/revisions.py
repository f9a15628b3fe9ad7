"""Revisions written into a copy of the notes example's migrations folder by the migration tests."""

ADD_TAGS = '''
    """add tags to notes"""

    import sqlalchemy as sa
    from alembic import op

    revision = "0002"
    down_revision = "0001"


    def upgrade() -> None:
        op.add_column("note", sa.Column("tags", sa.Text, nullable=False, server_default=""))


    def downgrade() -> None:
        op.drop_column("note", "tags")
'''

BROKEN = '''
    """a revision that fails"""

    from alembic import op

    revision = "0003"
    down_revision = "0002"


    def upgrade() -> None:
        op.execute("alter table no_such_table add column x int")


    def downgrade() -> None:
        pass
'''
