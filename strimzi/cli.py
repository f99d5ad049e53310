"""``netpilot strimzi render|validate|apply``.

Failures raise :class:`StrimziError` (exit 1 with ``error: ...`` from ``netpilot.cli.main``)
rather than ``typer.Exit``: the lazy root group does not translate ``typer.Exit`` raised by a
sub-app, which would print a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strimzi.errors import StrimziError

# = strimzi.render.MANIFESTS_DIR and strimzi.deploy.GENERATED_DIR (spelled here so that
# `--help` imports neither); tests/strimzi/test_render.py checks they agree.
CHART_FILES = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "netpilot" / "files"
MANIFESTS = CHART_FILES / "strimzi"
GENERATED = CHART_FILES / "generated"

app = typer.Typer(no_args_is_help=True, help="Strimzi CRs from the topic catalog: render, validate, apply.")


@app.command()
def render(
    out: Annotated[Path, typer.Option(help="Strimzi CRs directory.")] = MANIFESTS,
    chart_files: Annotated[Path, typer.Option(help="The Helm chart's workload facts directory.")] = GENERATED,
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 on a diff.")] = False,
    cluster: Annotated[str, typer.Option(help="Kafka cluster (CR) name.")] = "netpilot",
    namespace: Annotated[str, typer.Option(help="Namespace of the CRs.")] = "kafka",
    rack: Annotated[bool, typer.Option(help="Rack awareness on topology.kubernetes.io/zone.")] = True,
) -> None:
    """Render the Strimzi CRs and the Helm chart's workload facts from netpilot/catalog.py."""
    from strimzi.deploy import render_chart_files, write_chart_files
    from strimzi.render import RenderOptions, render_files, write

    opts = RenderOptions(
        cluster=cluster, namespace=namespace, rack_topology_key="topology.kubernetes.io/zone" if rack else None
    )
    if check:
        expected = {out / n: t for n, t in render_files(opts).items()}
        expected.update({chart_files / n: t for n, t in render_chart_files(opts).items()})
        stale = [str(p) for p, text in expected.items() if not p.exists() or p.read_text() != text]
        if stale:
            raise StrimziError(f"out of date: {', '.join(stale)}; run `netpilot strimzi render`")
        typer.echo(f"{out} and {chart_files}: up to date")
        return
    for path in [*write(out, opts), *write_chart_files(chart_files, opts)]:
        typer.echo(str(path))


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Validate CRs against the Strimzi 1.2.0 CRDs (strict schema + CEL rules)."""
    from strimzi.validate import validate_files

    results = validate_files(files)
    for result in results:
        typer.echo(result.describe())
    bad = sum(not r.ok for r in results)
    typer.echo(f"{len(results)} resource(s), {bad} invalid")
    if bad:
        raise StrimziError(f"{bad} of {len(results)} resource(s) invalid")


@app.command()
def apply(
    directory: Annotated[Path, typer.Option("--dir", help="Rendered manifests.")] = MANIFESTS,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="Default: $KUBECONFIG, ~/.kube/config, then in-cluster.")
    ] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Server-side dry run (dryRun=All).")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for Ready conditions.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600.0,
) -> None:
    """Server-side apply the CRs (field manager "netpilot"), after validating them offline."""
    from strimzi.apply import Applier, api_client
    from strimzi.validate import check, load_documents

    paths = sorted(directory.glob("*.yaml"))
    # Cluster first: topics and users name it in their strimzi.io/cluster label.
    paths.sort(key=lambda p: p.name != "kafka.yaml")
    docs = [d for p in paths for d in load_documents(p)]
    if not docs:
        raise StrimziError(f"no CRs in {directory}; run `netpilot strimzi render` first")
    check(docs)  # offline first: a broken CR never reaches the cluster
    crs = [d for d in docs if isinstance(d, dict)]  # all of them: check() refuses anything else
    applier = Applier(api_client(kubeconfig, context))
    refs = applier.apply(crs, dry_run=dry_run)
    verb = "validated by the server (dry run)" if dry_run else "applied"
    for ref in refs:
        typer.echo(f"{ref}: {verb}")
    if wait and not dry_run:
        applier.wait_ready(refs, timeout_s=timeout)
        typer.echo("all Ready")
