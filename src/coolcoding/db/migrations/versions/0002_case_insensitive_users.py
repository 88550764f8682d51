"""case-insensitive usernames and emails: unique indexes on lower(username) and lower(email)

Accounts that already differ only in case cannot be merged automatically (whose files, whose
password?), so the upgrade refuses with the list of them instead of failing on an index error or
silently picking one: rename or delete all but one of each group, then run the upgrade again.

Revision ID: 0002_users_nocase
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_users_nocase"
down_revision = "0001"
branch_labels = None
depends_on = None


def _duplicates(column: str) -> list[str]:
    rows = op.get_bind().execute(
        sa.text(
            f"SELECT id, {column} FROM users WHERE lower({column}) IN "  # noqa: S608 (fixed names)
            f"(SELECT lower({column}) FROM users GROUP BY lower({column}) HAVING count(*) > 1) "
            f"ORDER BY lower({column}), id"
        )
    )
    return [f"{column} {value!r} (user id {uid})" for uid, value in rows]


def upgrade() -> None:
    clashes = _duplicates("username") + _duplicates("email")
    if clashes:
        raise RuntimeError(
            "cannot make usernames and emails case-insensitive: these accounts differ only in "
            "case: " + "; ".join(clashes) + ". Rename or delete all but one of each group "
            "(change its username or email in the users table), then upgrade again."
        )
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_index("uq_users_username_lower", table_name="users")
