"""mlmarket: run the server, manage accounts and quotas, and use the marketplace as a buyer or
seller (`listings`, `subscribe`, `unsubscribe`, `subscriptions`, `usage`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import uvloop
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import OperationalError

from mlmarket import app as application
from mlmarket import workers
from mlmarket.agent.node import NodeAgent
from mlmarket.clock import SystemClock
from mlmarket.config import DEFAULT_AGENT_PORT, BadSetting, EventLoop, Settings
from mlmarket.domain import quotas
from mlmarket.execution.base import EngineError
from mlmarket.execution.docker import DockerEngine
from mlmarket.execution.swarm import Node, SwarmEngine
from mlmarket.protocol.models import DATA_PATH, add_data_path
from mlmarket.services.accounts import AccountExists, Accounts, Credentials
from mlmarket.storage import schema
from mlmarket.storage.metadata import DatabaseUnavailable, MetadataStore, connect, unavailable

if TYPE_CHECKING:  # `mlmarket check`'s pieces are imported when it runs
    from mlmarket.check.findings import Report
    from mlmarket.check.scratch import ScratchBuckets
    from mlmarket.check.serving import Options


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        data_dir=getattr(args, "data_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        worker=getattr(args, "worker", None),
    )


def _print_credentials(creds: Credentials, settings: Settings) -> None:
    endpoint = f"http://{settings.host}:{settings.port}"
    print(f"account {creds.account.name} ({creds.account.account_id})")
    print(f"  export AWS_ACCESS_KEY_ID={creds.access_key}")
    print(f"  export AWS_SECRET_ACCESS_KEY={creds.secret_key}")
    print(f"  export AWS_DEFAULT_REGION={settings.default_region}")
    print(f"  aws sagemaker list-endpoints --endpoint-url {endpoint}")


def _write_credentials_file(creds: Credentials, settings: Settings) -> Path:
    path = settings.data_dir / "credentials"
    path.write_text(
        f"[{creds.account.name}]\n"
        f"aws_access_key_id = {creds.access_key}\n"
        f"aws_secret_access_key = {creds.secret_key}\n"
    )
    path.chmod(0o600)
    return path


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    who = "" if settings.worker is None else f"worker {settings.worker} "
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s {who}%(name)s: %(message)s"
    )
    if args.workers < 1:
        print("mlmarket: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers > 1:
        # the schema and the default account are made once, before the workers start
        store = MetadataStore(settings.database)
        try:
            _ensure_default_account(Accounts(store, SystemClock()), settings)
        finally:
            store.close()
        serve_args = [
            f"--{name}={value}"
            for name, value in (
                ("host", args.host),
                ("port", args.port),
                ("data-dir", args.data_dir),
            )
            if value is not None
        ]
        return workers.supervise(args.workers, serve_args)
    app = application.build(settings)
    _ensure_default_account(app.accounts, settings)

    async def main() -> None:
        task = asyncio.ensure_future(application.serve(app))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
        runner.run(main())
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        agent = NodeAgent(
            settings.agent_secret or "",
            DockerEngine(args.docker_socket or settings.docker_socket),
            settings.data_dir,
        )
    except ValueError as exc:
        print(f"mlmarket agent: {exc}", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    if not port.isdigit():
        print(f"mlmarket agent: --listen is HOST:PORT, not {args.listen!r}", file=sys.stderr)
        return 2

    async def main() -> None:
        task = asyncio.ensure_future(agent.serve(host or "127.0.0.1", int(port)))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await agent.close()

    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
            runner.run(main())
    except (EngineError, OSError) as exc:
        print(f"mlmarket agent: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    """Each Swarm node as the servers judge it before placing anything: whether it can take
    containers, and why not. Exit 1 when none can."""
    settings = _settings(args)
    engine = application.container_engine(replace(settings, engine="swarm"))
    assert isinstance(engine, SwarmEngine)

    async def judged() -> list[Node]:
        try:
            return await engine.nodes()
        finally:
            await engine.close()

    try:
        nodes = asyncio.run(judged())
    except (EngineError, OSError) as exc:
        print(f"mlmarket nodes: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(n) for n in nodes], indent=2))
    else:
        width = max([len(n.hostname) for n in nodes] + [4])
        for n in nodes:
            verdict = "takes containers" if n.refused is None else f"refused: {n.refused}"
            print(f"{n.hostname:<{width}}  {n.id}  agent {n.agent}  {verdict}")
    return 0 if any(n.refused is None for n in nodes) else 1


def _loop_factory(name: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    return uvloop.new_event_loop if name == "uvloop" else None


def _ensure_default_account(accounts: Accounts, settings: Settings) -> None:
    created = accounts.ensure_default()
    if created is not None:
        print("Created the default account:")
        _print_credentials(created, settings)
        print(f"  (also written to {_write_credentials_file(created, settings)})", flush=True)


def cmd_db(args: argparse.Namespace) -> int:
    """`db upgrade` brings the schema to this version's (every command also does, on start);
    `db version` shows where it is."""
    settings = _settings(args)
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.db_command == "version":
        engine = connect(settings.database)
        try:
            found = schema.version(engine)
        except OperationalError as exc:
            raise unavailable(settings.database, exc) from None
        finally:
            engine.dispose()
        print(
            f"schema {found.current or 'none (an empty database)'}; this mlmarket's: {found.head}"
        )
        return 0
    store = MetadataStore(settings.database)
    store.close()
    print(f"schema {store.schema.current} (this mlmarket's newest)")
    return 0


def cmd_account_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(settings.database)
    try:
        creds = Accounts(store, SystemClock()).create(
            args.name, args.account_id, args.access_key, args.secret_key
        )
    except (AccountExists, ValueError) as exc:
        print(f"mlmarket: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    _print_credentials(creds, settings)
    return 0


def cmd_account_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = MetadataStore(settings.database)
    try:
        creds = Accounts(store, SystemClock()).credentials_of(args.name)
    finally:
        store.close()
    if creds is None:
        print(f"mlmarket: no account '{args.name}'", file=sys.stderr)
        return 2
    _print_credentials(creds, settings)
    return 0


def cmd_account_operator(args: argparse.Namespace) -> int:
    """Mark an account as an operator of this mlmarket (the console's accounts, host and audit
    pages), or with --revoke no longer."""
    settings = _settings(args)
    store = MetadataStore(settings.database)
    try:
        account = store.find_account(args.name)
        if account is None:
            print(f"mlmarket: no account '{args.name}'", file=sys.stderr)
            return 2
        store.set_operator(account.account_id, not args.revoke)
    finally:
        store.close()
    role = "no longer an operator" if args.revoke else "an operator"
    print(f"{account.name} ({account.account_id}) is {role}")
    return 0


def cmd_quota(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = MetadataStore(settings.database)
    try:
        account = store.find_account(args.account)
        if account is None:
            print(f"mlmarket: no account '{args.account}'", file=sys.stderr)
            return 2
        if args.quota_command == "set":
            if not quotas.known(args.name):
                print(
                    f"mlmarket: unknown quota '{args.name}'; see 'mlmarket quota list'",
                    file=sys.stderr,
                )
                return 2
            store.set_quota(account.account_id, args.name, args.value)
        changed = store.quotas_of(account.account_id)
        names = sorted(set(quotas.DEFAULTS) | set(changed))
        for name in names:
            value = changed.get(name, quotas.default(name))
            print(f"{name}: {value}{'' if name in changed else ' (default)'}")
        print(
            f"<type> for endpoint|training job|transform job usage: "
            f"{quotas.PER_TYPE_DEFAULT} (default, per instance type)"
        )
    finally:
        store.close()
    return 0


# -- the marketplace, through mlmarket's own API (the caller's usual AWS credentials) --


def _marketplace_client(args: argparse.Namespace) -> Any:
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    add_data_path(session._session)
    if session.region_name is None:
        session = boto3.Session(profile_name=args.profile, region_name="us-east-1")
        add_data_path(session._session)
    return session.client("mlmarket", endpoint_url=args.endpoint_url)


def _print_subscription(sub: dict[str, Any]) -> None:
    title = sub.get("ProductTitle") or ""
    print(f"{sub['ProductId']}  {title}  {sub['Status']}  {sub['AgreementId']}")
    for version in sub.get("Versions") or []:
        restricted = "  (restricted)" if version.get("Restricted") else ""
        print(f"  {version['VersionTitle']}: {version['Arn']}{restricted}")


def cmd_marketplace(args: argparse.Namespace) -> int:
    client = _marketplace_client(args)
    try:
        if args.command == "listings":
            result = client.list_listings()
            for item in result["Listings"]:
                mark = "subscribed" if item["Subscribed"] else item["Visibility"]
                print(f"{item['ProductId']}  {item.get('ProductTitle') or ''}  ({mark})")
                for price in item.get("Prices") or []:
                    print(f"  price {price['DimensionKey']}: {price['Price']} USD")
                for version in item["Versions"]:
                    print(f"  {version['VersionTitle']}: {version['Arn']}")
        elif args.command == "subscribe":
            result = client.subscribe(ProductId=args.product)
            _print_subscription(result["Subscription"])
        elif args.command == "unsubscribe":
            result = client.unsubscribe(ProductId=args.product)
            _print_subscription(result["Subscription"])
        elif args.command == "subscriptions":
            result = client.list_subscriptions()
            for sub in result["Subscriptions"]:
                _print_subscription(sub)
        else:
            params = {"View": "SELLER" if args.seller else "BUYER"}
            if args.product:
                params["ProductId"] = args.product
            result = client.get_usage(**params)
            for record in result["Usage"]:
                charge = f"  {record['Charge']} USD" if "Charge" in record else ""
                where = f"  {record['ResourceArn']}" if record.get("ResourceArn") else ""
                print(
                    f"{record['ProductId']}  {record['CustomerReference']}  "
                    f"{record['Dimension']}  {record['Quantity']:g} {record['Unit']}{charge}{where}"
                )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(f"mlmarket: {error.get('Code')}: {error.get('Message')}", file=sys.stderr)
        return 2
    except BotoCoreError as exc:
        print(f"mlmarket: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    if args.json:
        result.pop("ResponseMetadata", None)
        print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mlmarket import demo  # boto3 clients and sample images: only when asked for

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return demo.main(args.data_dir, lambda line: print(line, flush=True))


def cmd_check(args: argparse.Namespace) -> int:
    """Deploy the image on a private server (or the one at --endpoint-url), try the rules, print
    the report; exit 1 when a rule is violated."""
    from mlmarket.check import assets, reports, serving

    if args.algorithm and not args.train_data:
        print("mlmarket check: --algorithm needs --train-data", file=sys.stderr)
        return 2
    if assets.is_asset_arn(args.image) and not args.endpoint_url:
        print(
            "mlmarket check: a model package or algorithm is checked on the server that holds "
            "it: give --endpoint-url",
            file=sys.stderr,
        )
        return 2
    settings = Settings.from_env()
    try:
        hyperparameters = json.loads(args.hyperparameters or "{}")
        metrics = dict(m.split("=", 1) for m in args.metric or [])
    except ValueError as exc:
        print(f"mlmarket check: --hyperparameters or --metric: {exc}", file=sys.stderr)
        return 2
    options = serving.Options(
        image=args.image,
        instance_type=args.instance_type or serving.Options.instance_type,
        sample=Path(args.sample).read_bytes() if args.sample else None,
        content_type=args.content_type,
        accept=args.accept,
        calls=args.calls,
        serve=not args.algorithm or args.sample is not None,
        run_id=args.run_id,
    )
    say = functools.partial(print, flush=True)
    try:
        report = _check(args, settings, options, hyperparameters, metrics, say)
    except (BotoCoreError, ClientError, assets.NotCheckable) as exc:
        # the server or the resource, not the image, failed the check
        print(f"mlmarket check: {exc}", file=sys.stderr)
        return 2
    for line in reports.table(report):
        say(line)
    if args.json:
        reports.write_json(report, Path(args.json))
    if args.junit:
        reports.write_junit(report, Path(args.junit))
    if args.report:
        reports.write_html(report, Path(args.report))
    return 0 if report.passed else 1


def _check(
    args: argparse.Namespace,
    settings: Settings,
    options: Options,
    hyperparameters: dict[str, str],
    metrics: dict[str, str],
    say: Callable[[str], None],
) -> Report:
    """The check's run: its server and clients, its engine, and each rule's step."""
    import tempfile

    from mlmarket.check import assets, images, isolation, serving, training
    from mlmarket.check.engine import LocalEngine
    from mlmarket.check.findings import Finding
    from mlmarket.check.scratch import ScratchBuckets
    from mlmarket.local import LocalServer

    with contextlib.ExitStack() as stack:
        names = ("sagemaker", "sagemaker-runtime", "sts", "s3", "logs")
        asset_arn = args.image if assets.is_asset_arn(args.image) else None
        if args.endpoint_url:
            region = assets.region_of(asset_arn) if asset_arn else args.region
            session = boto3.Session(region_name=region)
            add_data_path(session._session)
            # a server that is not there is said at once, not after the legacy retries' backoff
            config = BotoConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5)
            clients = [
                session.client(name, endpoint_url=args.endpoint_url, config=config)
                for name in names
            ]
        else:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="mlmarket-check-"))
            say(f"mlmarket check: a private server with its data in {data_dir}")
            server = LocalServer(Path(data_dir)).start()
            stack.callback(server.remove_containers)
            stack.callback(server.stop)
            region = args.region or settings.default_region
            clients = [server.client(name, region=region) for name in names]
        sm, rt, sts, s3, logs = clients
        scratch = ScratchBuckets(s3)
        stack.callback(scratch.remove)  # before the private server (if any) stops
        account = sts.get_caller_identity()["Account"]
        role = f"arn:aws:iam::{account}:role/mlmarket-check"
        trained: training.TrainingOptions | None = None
        if args.algorithm:
            trained = training.TrainingOptions(
                args.image,
                args.instance_type or options.instance_type,
                Path(args.train_data),
                hyperparameters=hyperparameters,
                metrics=metrics,
            )
        readiness: list[Finding] = []
        if asset_arn is not None:
            asset = assets.resolve(sm, s3, asset_arn, args.instance_type, args.calls)
            say(f"checking {asset_arn}: image {asset.serving.image}")
            options = replace(
                asset.serving,
                sample=options.sample or asset.serving.sample,
                accept=args.accept or asset.serving.accept,
                run_id=options.run_id,
            )
            trained, readiness = asset.training, [asset.readiness]
        if args.model_data:
            options = replace(options, model_data_url=_model_data(scratch, args.model_data))
        engine = LocalEngine(settings.docker_socket)
        stack.callback(engine.close)
        image = options.image

        no_sink = (
            "catching egress needs root, ip (iproute2) and nsenter on the engine's host"
            if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None
            else None
        )

        def egress(model_data_url: str | None) -> Finding:
            if no_sink:
                return Finding("R1", isolation.CHECK, "skipped", "", no_sink)
            startup = args.startup_seconds or settings.startup_health_timeout_seconds
            model = None
            if model_data_url is not None:
                model = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="model-")))
                isolation.unpack_model(s3, model_data_url, model)
            return isolation.run(engine, image, options.instance_type, startup, say, model)

        def train() -> tuple[list[Finding], str | None]:
            assert trained is not None
            findings, result = training.run(
                training.TrainingClients(sm, s3, role, scratch), trained, say
            )
            if no_sink:
                findings.append(Finding("R1", isolation.TRAINING_CHECK, "skipped", "", no_sink))
            else:
                opt_ml = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="opt-ml-")))
                isolation.lay_out_training(opt_ml, s3, trained)
                bound = max(30.0, 3 * (result.training_seconds or 10.0))
                findings.append(
                    isolation.run_training(
                        engine, trained.image, trained.instance_type, opt_ml, bound, say
                    )
                )
            return findings, result.model_data_url

        def listing() -> list[Finding]:
            region = sm.meta.region_name
            builtins = {
                name: engine.root_layers(image)
                for name, image in images.builtin_images(region).items()
            }
            return [
                images.repository(image, account, region),
                images.lineage(engine.root_layers(image) or [], builtins),
                *readiness,
            ]

        report = serving.run(
            serving.Clients(sm, rt, role, s3, logs, scratch),
            engine,
            options,
            say,
            isolation=egress,
            training=train if trained is not None else None,
            listing=listing,
        )
    return report


def _model_data(scratch: ScratchBuckets, given: str) -> str:
    """The model data's S3 URL: as given, or a local model.tar.gz uploaded to the server."""
    if given.startswith("s3://"):
        return given
    bucket = scratch.create(f"mlmarket-check-model-{secrets.token_hex(4)}")
    scratch.s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=Path(given).read_bytes())
    return f"s3://{bucket}/model.tar.gz"


def cmd_models_path(args: argparse.Namespace) -> int:
    print(DATA_PATH)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mlmarket", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8787)")
    serve.add_argument("--data-dir", help="where state lives (default ~/.mlmarket)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, database and data directory (default 1)",
    )
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # one of --workers'
    serve.set_defaults(func=cmd_serve)

    agent = sub.add_parser(
        "agent", help="the data plane of one Docker host (Swarm node) for the API servers"
    )
    agent.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEFAULT_AGENT_PORT}",
        help=f"host:port servers reach it on (default 127.0.0.1:{DEFAULT_AGENT_PORT})",
    )
    agent.add_argument("--docker-socket", help="this host's engine (default /var/run/docker.sock)")
    agent.add_argument(
        "--data-dir",
        help="where model data and training volumes are staged: the servers' data directory "
        "path (default ~/.mlmarket)",
    )
    agent.set_defaults(func=cmd_agent)

    nodes = sub.add_parser(
        "nodes", help="the Swarm's nodes as servers judge them (MLMARKET_DOCKER_SOCKET: a manager)"
    )
    nodes.add_argument("--json", action="store_true", help="as JSON")
    nodes.set_defaults(func=cmd_nodes)

    db = sub.add_parser("db", help="the metadata database's schema").add_subparsers(
        dest="db_command", required=True
    )
    for name, text in (
        ("upgrade", "upgrade the schema to this version's (serve also does, on start)"),
        ("version", "the schema's version, and this mlmarket's"),
    ):
        command = db.add_parser(name, help=text)
        command.add_argument("--data-dir")
        command.set_defaults(func=cmd_db)

    account = sub.add_parser("account", help="manage accounts").add_subparsers(
        dest="account_command", required=True
    )
    create = account.add_parser("create", help="create an account and print its keys")
    create.add_argument("name")
    create.add_argument("--account-id", help="12 digits (default: random)")
    create.add_argument("--access-key")
    create.add_argument("--secret-key")
    create.add_argument("--data-dir")
    create.set_defaults(func=cmd_account_create)
    show = account.add_parser("show", help="print an account's keys")
    show.add_argument("name")
    show.add_argument("--data-dir")
    show.set_defaults(func=cmd_account_show)
    operator = account.add_parser("operator", help="let an account operate this mlmarket")
    operator.add_argument("name")
    operator.add_argument("--revoke", action="store_true", help="no longer an operator")
    operator.add_argument("--data-dir")
    operator.set_defaults(func=cmd_account_operator)

    quota = sub.add_parser("quota", help="service quotas per account (R7)").add_subparsers(
        dest="quota_command", required=True
    )
    listing = quota.add_parser("list", help="an account's quotas")
    listing.add_argument("account", help="name or 12-digit id")
    listing.add_argument("--data-dir")
    listing.set_defaults(func=cmd_quota)
    setting = quota.add_parser("set", help="change one of an account's quotas")
    setting.add_argument("account", help="name or 12-digit id")
    setting.add_argument("name", help="e.g. 'ml.m5.large for endpoint usage'")
    setting.add_argument("value", type=int)
    setting.add_argument("--data-dir")
    setting.set_defaults(func=cmd_quota)

    def client_options(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument(
            "--endpoint-url", default="http://127.0.0.1:8787", help="the mlmarket server"
        )
        command.add_argument("--region", help="region of the ARNs shown (default: the profile's)")
        command.add_argument("--profile", help="AWS profile whose credentials sign the calls")
        command.add_argument("--json", action="store_true", help="also print the raw answer")
        command.set_defaults(func=cmd_marketplace)
        return command

    client_options(sub.add_parser("listings", help="products you may subscribe to"))
    for name, text in (
        ("subscribe", "subscribe to a product (records an agreement)"),
        ("unsubscribe", "cancel your subscription to a product"),
    ):
        client_options(sub.add_parser(name, help=text)).add_argument("product", help="prod-…")
    client_options(sub.add_parser("subscriptions", help="your agreements"))
    usage = client_options(sub.add_parser("usage", help="metered usage, as buyer or seller"))
    usage.add_argument("--seller", action="store_true", help="usage of your products")
    usage.add_argument("--product", help="only this product")
    demo = sub.add_parser(
        "demo", help="the whole marketplace in a few minutes, on a server of its own"
    )
    demo.add_argument("--data-dir", help="keep the demo's state here (default: a temporary one)")
    demo.set_defaults(func=cmd_demo)
    check = sub.add_parser(
        "check",
        help="a seller's pre-flight report: the image deployed and called as buyers will",
    )
    check.add_argument(
        "image",
        help="the image, as the local engine names it, or a model package or algorithm ARN",
    )
    check.add_argument("--sample", help="a file to invoke the endpoint with")
    check.add_argument("--content-type", default="application/json", help="of the sample")
    check.add_argument("--accept", help="the Accept header of the calls")
    check.add_argument(
        "--instance-type",
        help="(default ml.m5.large; for a model package or algorithm, the first it supports)",
    )
    check.add_argument("--calls", type=int, default=20, help="calls timed for latency (20)")
    check.add_argument(
        "--startup-seconds",
        type=int,
        help="how long R1's start may take to answer /ping (default 240); the endpoint's is "
        "the server's",
    )
    check.add_argument("--json", help="also write the report here, as JSON")
    check.add_argument("--junit", help="also write the report here, as JUnit XML")
    check.add_argument("--report", help="also write the report here, as one HTML file")
    check.add_argument(
        "--endpoint-url", help="check through this server (default: a private one, started here)"
    )
    check.add_argument("--region", help="(default: the server's default region)")
    check.add_argument("--model-data", help="the model's model.tar.gz: a local file or s3:// URL")
    check.add_argument(
        "--algorithm", action="store_true", help="an algorithm: train it first (--train-data)"
    )
    check.add_argument("--run-id", help=argparse.SUPPRESS)  # a server's check (StartCheck)
    check.add_argument("--train-data", help="a file or directory: the 'train' channel")
    check.add_argument("--hyperparameters", help="a JSON object of strings")
    check.add_argument(
        "--metric", action="append", help="NAME=REGEX, a metric its output must show (repeat)"
    )
    check.set_defaults(func=cmd_check)
    sub.add_parser(
        "models-path", help="botocore data path of mlmarket's API (for AWS_DATA_PATH)"
    ).set_defaults(func=cmd_models_path)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (BadSetting, DatabaseUnavailable, schema.SchemaTooNew) as exc:
        print(f"mlmarket: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
