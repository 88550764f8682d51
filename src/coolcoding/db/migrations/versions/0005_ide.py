"""IDE: per-user preferences, starter templates in the database, a full-text search index

Revision ID: 0005
Revises: 0003_leases

The search index is a table of its own kept in sync by triggers on ``workspace_items`` (so every
write path, the API's and the sandbox sync's, updates it in the same transaction):
PostgreSQL: ``workspace_search(item_id, session_id, body text)`` with a pg_trgm GIN index
(substring ILIKE is answered from the index); SQLite: an FTS5 table with the trigram tokenizer.
Binary files are not indexed. Search takes candidates from the index, then matches exactly.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PY_MAIN = (
    'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\n\n'
    'if __name__ == "__main__":\n    print(greet("Cool Coding Platform"))\n'
)
JS_MAIN = (
    "function greet(name) {\n  return `Hello, ${name}!`;\n}\n\n"
    'console.log(greet("Node.js " + process.version));\n'
)
TS_MAIN = 'function greet(name: string): string {\n  return `Hello, ${name}!`;\n}\n\nconsole.log(greet("TypeScript"));\n'
TS_CONFIG = '{\n  "compilerOptions": {\n    "target": "ES2022",\n    "module": "commonjs",\n    "strict": true,\n    "outDir": "dist"\n  },\n  "include": ["*.ts"]\n}\n'
TS_PACKAGE = '{\n  "name": "typescript-starter",\n  "private": true,\n  "scripts": {\n    "build": "tsc",\n    "start": "tsc && node dist/main.js"\n  },\n  "devDependencies": {\n    "typescript": "^5.4.0"\n  }\n}\n'
C_MAIN = (
    '#include <stdio.h>\n\nint main(void) {\n    printf("Hello from C!\\n");\n    return 0;\n}\n'
)
CPP_MAIN = '#include <iostream>\n#include <string>\n\nint main() {\n    std::cout << "Hello from C++!" << std::endl;\n    return 0;\n}\n'
JAVA_MAIN = 'public class Main {\n    public static void main(String[] args) {\n        System.out.println("Hello from Java!");\n    }\n}\n'
RUST_MAIN = 'fn main() {\n    println!("Hello from Rust!");\n}\n'
BASH_MAIN = '#!/usr/bin/env bash\nset -euo pipefail\n\necho "Hello from Bash ${BASH_VERSION}"\n'
FLASK_APP = (
    'import os\n\nfrom flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route("/")\n'
    'def index() -> str:\n    return "<h1>Hello from Flask!</h1>"\n\n\n'
    'if __name__ == "__main__":\n'
    '    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))\n'
)
FLASK_REQS = "flask\n"
EXPRESS_APP = (
    'const express = require("express");\n\nconst app = express();\n'
    "const port = Number(process.env.PORT || 8000);\n\n"
    'app.get("/", (req, res) => res.send("<h1>Hello from Express!</h1>"));\n\n'
    'app.listen(port, "0.0.0.0", () => console.log(`listening on ${port}`));\n'
)
EXPRESS_PACKAGE = '{\n  "name": "express-starter",\n  "private": true,\n  "main": "index.js",\n  "scripts": {\n    "start": "node index.js"\n  },\n  "dependencies": {\n    "express": "^4.19.0"\n  }\n}\n'

# (key, name, language, description, entry, default for its language, files)
TEMPLATES: list[tuple[str, str, str, str, str, bool, list[tuple[str, str]]]] = [
    ("python", "Python", "python", "A Python 3 program", "main.py", True, [("main.py", PY_MAIN)]),
    (
        "node",
        "JavaScript (Node.js)",
        "javascript",
        "A Node.js program",
        "index.js",
        True,
        [("index.js", JS_MAIN)],
    ),
    (
        "typescript",
        "TypeScript",
        "javascript",
        "TypeScript compiled with tsc (npm install)",
        "main.ts",
        False,
        [("main.ts", TS_MAIN), ("tsconfig.json", TS_CONFIG), ("package.json", TS_PACKAGE)],
    ),
    ("c", "C", "c", "A C program (gcc)", "main.c", True, [("main.c", C_MAIN)]),
    ("cpp", "C++", "cpp", "A C++ program (g++)", "main.cpp", True, [("main.cpp", CPP_MAIN)]),
    ("java", "Java", "java", "A Java program", "Main.java", True, [("Main.java", JAVA_MAIN)]),
    ("rust", "Rust", "rust", "A Rust program (rustc)", "main.rs", True, [("main.rs", RUST_MAIN)]),
    ("bash", "Bash", "bash", "A Bash script", "main.sh", True, [("main.sh", BASH_MAIN)]),
    (
        "flask",
        "Flask web app",
        "python",
        "A Flask app on port 8000 (open it in the preview)",
        "app.py",
        False,
        [("app.py", FLASK_APP), ("requirements.txt", FLASK_REQS)],
    ),
    (
        "express",
        "Express web app",
        "javascript",
        "An Express app on port 8000 (npm install, then open it in the preview)",
        "index.js",
        False,
        [("index.js", EXPRESS_APP), ("package.json", EXPRESS_PACKAGE)],
    ),
]

PG_TRIGGER = """
CREATE OR REPLACE FUNCTION workspace_search_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM workspace_search WHERE item_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.type = 'file' AND NOT NEW.is_binary
            AND NEW.content IS NOT NULL THEN
        BEGIN
            INSERT INTO workspace_search (item_id, session_id, body)
            VALUES (NEW.id, NEW.session_id, convert_from(NEW.content, 'UTF8'));
        EXCEPTION WHEN others THEN
            -- not valid UTF-8 text (e.g. a NUL after the sniffed prefix): not searchable
            NULL;
        END;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


def _seed_templates() -> None:
    templates = sa.table(
        "session_templates",
        sa.column("id", sa.Integer),
        sa.column("key", sa.String),
        sa.column("name", sa.String),
        sa.column("language", sa.String),
        sa.column("description", sa.String),
        sa.column("entry_file", sa.String),
        sa.column("is_default", sa.Boolean),
        sa.column("sort_order", sa.Integer),
    )
    files = sa.table(
        "template_files",
        sa.column("template_id", sa.Integer),
        sa.column("path", sa.String),
        sa.column("content", sa.Text),
    )
    rows: list[dict[str, object]] = []
    file_rows: list[dict[str, object]] = []
    for i, (key, name, lang, desc, entry, default, tfiles) in enumerate(TEMPLATES, start=1):
        rows.append(
            {
                "id": i,
                "key": key,
                "name": name,
                "language": lang,
                "description": desc,
                "entry_file": entry,
                "is_default": default,
                "sort_order": i * 10,
            }
        )
        file_rows.extend({"template_id": i, "path": p, "content": c} for p, c in tfiles)
    op.bulk_insert(templates, rows)
    op.bulk_insert(files, file_rows)


def upgrade() -> None:
    op.create_table(
        "user_preferences",
        sa.Column(
            "user_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "session_templates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("language", sa.String(32), nullable=False),
        sa.Column("description", sa.String(512), nullable=False, server_default=""),
        sa.Column("entry_file", sa.String(1024), nullable=True),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("sort_order", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "template_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "template_id",
            sa.Integer,
            sa.ForeignKey("session_templates.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.UniqueConstraint("template_id", "path", name="uq_template_files_path"),
    )
    _seed_templates()
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _pg_search_index(bind)
    else:
        _sqlite_search_index()


def _pg_search_index(bind: sa.engine.Connection) -> None:
    have = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).first()
    if have is None:
        raise RuntimeError(
            "PostgreSQL lacks the pg_trgm extension (Debian: postgresql-contrib); workspace "
            "search needs it"
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "workspace_search",
        sa.Column(
            "item_id",
            sa.BigInteger,
            sa.ForeignKey("workspace_items.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("session_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.execute(
        "CREATE INDEX ix_workspace_search_body ON workspace_search USING gin (body gin_trgm_ops)"
    )
    op.execute(PG_TRIGGER)
    op.execute(
        "CREATE TRIGGER workspace_search_sync AFTER INSERT OR DELETE OR UPDATE OF content, "
        "is_binary, type ON workspace_items FOR EACH ROW EXECUTE FUNCTION workspace_search_sync()"
    )
    op.execute(
        "INSERT INTO workspace_search (item_id, session_id, body) "
        "SELECT id, session_id, convert_from(content, 'UTF8') FROM workspace_items "
        "WHERE type = 'file' AND NOT is_binary AND content IS NOT NULL "
        "AND position('\\x00'::bytea in content) = 0"
    )


def _sqlite_search_index() -> None:
    # rowid = workspace_items.id; session_id is stored, not indexed (filtered after MATCH).
    op.execute(
        "CREATE VIRTUAL TABLE workspace_search USING fts5("
        "body, session_id UNINDEXED, tokenize = 'trigram')"
    )
    insert = (
        "INSERT INTO workspace_search (rowid, body, session_id) "
        "SELECT NEW.id, CAST(NEW.content AS TEXT), NEW.session_id "
        "WHERE NEW.type = 'file' AND NOT NEW.is_binary AND NEW.content IS NOT NULL;"
    )
    op.execute(
        f"CREATE TRIGGER workspace_search_ins AFTER INSERT ON workspace_items BEGIN {insert} END"
    )
    update = (
        "CREATE TRIGGER workspace_search_upd AFTER UPDATE OF content, is_binary, type "
        "ON workspace_items BEGIN DELETE FROM workspace_search WHERE rowid = OLD.id; "
    )
    op.execute(update + insert + " END")
    op.execute(
        "CREATE TRIGGER workspace_search_del AFTER DELETE ON workspace_items BEGIN "
        "DELETE FROM workspace_search WHERE rowid = OLD.id; END"
    )
    op.execute(
        "INSERT INTO workspace_search (rowid, body, session_id) "
        "SELECT id, CAST(content AS TEXT), session_id FROM workspace_items "
        "WHERE type = 'file' AND NOT is_binary AND content IS NOT NULL"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS workspace_search_sync ON workspace_items")
        op.execute("DROP FUNCTION IF EXISTS workspace_search_sync()")
        op.drop_table("workspace_search")
    else:
        for name in ("ins", "upd", "del"):
            op.execute(f"DROP TRIGGER IF EXISTS workspace_search_{name}")
        op.execute("DROP TABLE IF EXISTS workspace_search")
    op.drop_table("template_files")
    op.drop_table("session_templates")
    op.drop_table("user_preferences")
