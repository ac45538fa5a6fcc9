"""Alembic environment: `bin/demo-app migrate` passes an open connection in a transaction."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `bin/demo-app migrate ...`, which connects with the app's config"
    )
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
