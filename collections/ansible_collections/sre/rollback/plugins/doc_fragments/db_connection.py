# GPL-3.0-or-later
"""Options shared by the database modules (db_backup, db_restore, db_inspect)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  engine:
    description: The database engine.
    type: str
    required: true
    choices: [postgresql, sqlite]
  database:
    description:
      - PostgreSQL - the name of the database.
      - SQLite - the absolute path of the database file.
    type: str
    required: true
  login_host:
    description:
      - PostgreSQL host or socket directory; empty means the local default socket.
    type: str
    default: ""
  login_port:
    description: PostgreSQL port.
    type: int
    default: 5432
  login_user:
    description: PostgreSQL role to log in as; empty means the OS user's name (peer).
    type: str
    default: ""
  login_password:
    description: Password of I(login_user), passed in C(PGPASSWORD), never on a command line.
    type: str
    default: ""
  os_user:
    description:
      - OS user the PostgreSQL tools run as (with C(runuser) when the module runs as root).
        Backup files are owned by this user, mode 0600, so that C(pg_restore) can read them.
      - Empty means the user the module runs as.
    type: str
    default: postgres
  pg_bindir:
    description:
      - Directory of psql, pg_dump and pg_restore.
      - Empty picks Debian's newest C(/usr/lib/postgresql/<v>/bin).
    type: str
    default: ""
  revision_query:
    description:
      - SQL returning the migration revision of the database (one value). Its failure
        (no such table yet) means no revision.
    type: str
    default: SELECT version_num FROM alembic_version
  environment_query:
    description:
      - SQL returning the environment name the application recorded in the database (the
        production guard compares it with the inventory's). Empty to skip.
    type: str
    default: SELECT value FROM app_meta WHERE key = 'environment'
  timeout:
    description: Seconds one database tool (pg_dump, pg_restore) may run.
    type: int
    default: 3600
"""
