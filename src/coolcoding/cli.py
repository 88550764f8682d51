"""The ``coolcoding`` command: serve, worker, db upgrade, user create/list, deploy render/secrets."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path

import typer

from coolcoding.errors import DomainError
from coolcoding.settings import get_settings

app = typer.Typer(help="Cool Coding Platform", no_args_is_help=True)
db_app = typer.Typer(help="Database")
user_app = typer.Typer(help="Users")
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
deploy_app = typer.Typer(help="Kubernetes deployment (deploy/kubernetes)")
app.add_typer(deploy_app, name="deploy")


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind (default from COOLCODING_HOST)"),
    port: int = typer.Option(None, help="Port (default from COOLCODING_PORT)"),
    workers: int = typer.Option(
        None,
        help="Worker processes on the port (default from COOLCODING_WORKERS, 1); more than 1 "
        "needs PostgreSQL and COOLCODING_REDIS_URL",
    ),
) -> None:
    """Run the platform (migrations are applied at start)."""
    import uvicorn

    from coolcoding.app import create_app
    from coolcoding.httpserver import raise_open_file_limit, settle_gc, uvicorn_options
    from coolcoding.workers import serve_workers, workers_problem

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    n = settings.workers if workers is None else workers
    if (problem := workers_problem(settings, n)) is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    typer.echo(
        f"Cool Coding Platform on http://{host}:{port}/  (database: {settings.effective_database_url.split('://')[0]})"
        + (f", {n} workers" if n > 1 else "")
    )
    if n > 1:
        raise typer.Exit(serve_workers(settings, host, port, n))
    from coolcoding.modeswitch import enter_serve

    # Held while this process lives: a later ``serve --workers`` on this data dir then leaves
    # its sandboxes alone; and a dead ``--workers``'s leftovers are reclaimed first.
    if enter_serve(settings) is None:
        typer.echo(
            f"error: another `coolcoding serve` runs on {settings.data_dir}: give each its own "
            "data dir",
            err=True,
        )
        raise typer.Exit(2)
    before, nofile = raise_open_file_limit()
    typer.echo(f"open-file limit {nofile} (was {before})")
    application = create_app(settings)
    settle_gc(settings)
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="info",
        access_log=settings.access_log,
        **uvicorn_options(settings, open_file_limit=nofile),
    )


@app.command("serve-worker", hidden=True)
def serve_worker(
    fd: int = typer.Option(..., help="Inherited listening socket"),
    index: int = typer.Option(..., help="Worker number (its data dir)"),
    parent_pid: int = typer.Option(..., help="The supervisor's pid"),
) -> None:
    """One worker of ``serve --workers N`` (started by the supervisor, not by hand)."""
    from coolcoding.workers import run_worker

    run_worker(get_settings(), fd, index, parent_pid)


@app.command()
def worker(
    slots: int = typer.Option(0, help="Jobs at once (default: COOLCODING_EXEC_WORKERS)"),
) -> None:
    """Run a judge worker on the database queue (COOLCODING_EXEC_QUEUE=database)."""
    import logging

    from coolcoding.services.judge_worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        done = asyncio.run(run_worker(get_settings(), slots))
    except ValueError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from e
    typer.echo(f"drained: {done} jobs finished")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION."""
    from coolcoding.db.engine import Database
    from coolcoding.db.migrate import upgrade

    async def _run() -> None:
        db = Database(get_settings())
        await upgrade(db.engine, revision)
        await db.dispose()

    asyncio.run(_run())
    typer.echo("database is up to date")


@user_app.command("create")
def user_create(
    username: str, email: str, password: str = typer.Option(None, help="Prompted if omitted")
) -> None:
    """Create a user account."""
    from coolcoding.platform import Platform

    pw = password or getpass.getpass("password: ")

    async def _run() -> None:
        p = Platform(get_settings())
        await p.start()
        try:
            user = await p.accounts.create_user(username, email, pw)
            typer.echo(f"created user {user.id} {user.username}")
        except DomainError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(1) from exc
        finally:
            await p.stop()

    asyncio.run(_run())


@user_app.command("list")
def user_list() -> None:
    """List user accounts."""
    from coolcoding.platform import Platform

    async def _run() -> None:
        p = Platform(get_settings())
        await p.start()
        try:
            for u in await p.accounts.list_users():
                typer.echo(f"{u.id}\t{u.username}\t{u.email}\t{u.created_at:%Y-%m-%d}")
        finally:
            await p.stop()

    asyncio.run(_run())


@deploy_app.command("render")
def deploy_render(
    values: Path = typer.Option(None, "-f", "--values", help="Values file (YAML); default values"),
    out_dir: Path = typer.Option(None, "--out-dir", help="Write files + kustomization.yaml here"),
) -> None:
    """Print the platform's Kubernetes manifests (``| kubectl apply -f -``)."""
    from pydantic import ValidationError

    from coolcoding.sandbox.kubernetes.render import render_stream, write_dir
    from coolcoding.sandbox.kubernetes.values import load_values

    try:
        v = load_values(values)
    except (OSError, ValueError, ValidationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if out_dir is None:
        typer.echo(render_stream(v), nl=False)
    else:
        for path in write_dir(v, out_dir):
            typer.echo(f"wrote {path}", err=True)


@deploy_app.command("secrets")
def deploy_secrets(
    values: Path = typer.Option(None, "-f", "--values", help="Values file (YAML); default values"),
) -> None:
    """Print the deployment's Secret with fresh random values (apply once; never commit it)."""
    from coolcoding.sandbox.kubernetes.datastores import generated_secret
    from coolcoding.sandbox.kubernetes.render import dump
    from coolcoding.sandbox.kubernetes.values import load_values

    typer.echo(dump([generated_secret(load_values(values))]), nl=False)


def main() -> None:
    app()
