"""The demo's summary (terminal) and HTML report (plots as inline SVG), read from the lakehouse with DuckDB."""

from __future__ import annotations

import datetime as dt
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_lib.io.portable import duckdb_query, is_table, list_tables

if TYPE_CHECKING:
    from etl_lib.config import Bands
    from etl_lib.demo.run import DemoRun

#: Columns of the lineage graph, left to right.
LAYER_ORDER = ("source", "bronze", "silver", "gold", "mesh")
LINEAGE_TABLE = "gold/customer_features"


def _path(run: DemoRun, layer: str, table: str) -> str:
    return run.config.lakehouse.table_path(layer, table)


def _query(run: DemoRun, sql: str, **tables: str) -> list[tuple[Any, ...]]:
    paths = {name: _path(run, *table.split("/")) for name, table in tables.items()}
    if not all(is_table(path) for path in paths.values()):
        return []
    return duckdb_query(sql, **paths)


def quality_scores(run: DemoRun) -> dict[str, float]:
    """The score of each table's newest quality evaluation."""
    rows = _query(
        run,
        """
        SELECT "table", min(score) FROM q
        WHERE (("table", evaluated_at) IN (SELECT ("table", max(evaluated_at)) FROM q GROUP BY "table"))
        GROUP BY "table" ORDER BY "table"
        """,
        q="audit/quality_results",
    )
    return {str(table): float(score) for table, score in rows}


def quality_rules(run: DemoRun) -> list[tuple[str, str, float, float, bool]]:
    """``(table, rule, passing share, threshold, passed)`` of each table's newest evaluation."""
    rows = _query(
        run,
        """
        SELECT "table", rule, CASE WHEN "rows" > 0 THEN 1 - failing_rows / "rows" ELSE 1 END, threshold, passed
        FROM q WHERE (("table", evaluated_at) IN (SELECT ("table", max(evaluated_at)) FROM q GROUP BY "table"))
        ORDER BY "table", rule
        """,
        q="audit/quality_results",
    )
    return [(str(t), str(r), float(share), float(th or 0), bool(ok)) for t, r, share, th, ok in rows]


def summary_lines(run: DemoRun) -> list[str]:
    """The end-of-demo summary for a terminal."""
    from etl_lib.lineage.query import load_events, render, upstream

    root = run.config.lakehouse.root
    lines = ["", "summary", "-------"]
    # Steps of a phase run side by side: their times add up to more than the demo took.
    elapsed = (dt.datetime.now(dt.UTC) - run.started_at).total_seconds()
    busy = sum(step.seconds for step in run.steps)
    lines.append(f"{len(run.steps)} steps in {elapsed:.0f} s ({busy:.0f} s of steps, some side by side)")
    scores = quality_scores(run)
    lines.append(f"tables under {root} (read back with the deltalake package):")
    for info in list_tables(root):
        name = f"{info.layer}/{info.table}"
        quality = f"quality {scores[name]:.2f}" if name in scores else ""
        lines.append(f"  {name:<40} {info.rows:>10,} rows  {quality}")
    score = run.metrics("score")
    if score:
        lines.append(
            f"anomalies: {score.get('anomalies', 0):,} of {score.get('purchase_lines_scored', 0):,} purchase lines "
            f"(model version {score.get('anomaly_model_version')})"
        )
        bands = ", ".join(
            f"{k.removeprefix('churn_risk_')} {v:,}" for k, v in score.items() if k.startswith("churn_risk_")
        )
        lines.append(f"churn risk: {bands} (model version {score.get('churn_model_version')})")
    trained = run.metrics("train_models")
    if trained:
        lines.append(
            f"churn ROC-AUC (cross-validated): Online Retail {trained.get('churn_cv_roc_auc')} "
            f"({trained.get('churn_model')}), Telco {trained.get('telco_cv_roc_auc')} ({trained.get('telco_model')})"
        )
    reconcile = run.metrics("reconcile")
    if reconcile:
        lines.append(str(reconcile.get("summary")))
    events = load_events(root)
    if any(e["dataset"] == LINEAGE_TABLE for e in events):
        lines.append(f"lineage of {LINEAGE_TABLE}:")
        lines.extend("  " + line for line in render(upstream(events, LINEAGE_TABLE), "<-").splitlines())
    return lines


# --- plots


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(width, height))
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def quality_plot(rules: list[tuple[str, str, float, float, bool]]) -> str | None:
    """Passing share of each rule (green passed, red failed), with its threshold."""
    if not rules:
        return None
    figure, axes = _figure(9, 0.28 * len(rules) + 1)
    labels = [f"{table} · {rule}" for table, rule, *_ in rules]
    shares = [share for _, _, share, _, _ in rules]
    colors = ["#2e7d32" if ok else "#c62828" for *_, ok in rules]
    positions = range(len(rules))
    axes.barh(positions, shares, color=colors)
    axes.scatter([th for _, _, _, th, _ in rules], positions, marker="|", color="black", s=120, label="threshold")
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(min(0.9, min(shares) - 0.02), 1.001)
    axes.set_xlabel("share of rows passing")
    axes.legend(loc="lower left", fontsize=8)
    return _svg(figure)


def anomaly_plot(scores: list[float], threshold: float | None) -> str | None:
    """Distribution of the anomaly scores, log scale, with the model's decision threshold."""
    if not scores:
        return None
    figure, axes = _figure(9, 3.5)
    axes.hist(scores, bins=80, color="#1565c0")
    axes.set_yscale("log")
    if threshold is not None:
        axes.axvline(threshold, color="#c62828", linestyle="--", label=f"threshold {threshold:.3f}")
        axes.legend(fontsize=8)
    axes.set_xlabel("anomaly score (higher: more isolated)")
    axes.set_ylabel("purchase lines")
    return _svg(figure)


def churn_plot(probabilities: list[float], counts: dict[str, int], bands: Bands) -> str | None:
    """Churn probability distribution with the risk bands' edges, and the count per band (``counts``)."""
    if not probabilities:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": [3, 1]})
    left.hist(probabilities, bins=50, color="#6a1b9a")
    for edge in bands.edges:
        left.axvline(edge, color="black", linestyle=":")
    left.set_xlabel(f"churn probability (bands: {bands.describe()})")
    left.set_ylabel("customers")
    names = [name for name in bands.names if name in counts]
    right.bar(names, [counts[n] for n in names], color=["#2e7d32", "#f9a825", "#c62828"][: len(names)])
    right.set_ylabel("customers")
    for axes in (left, right):
        axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure)


def revenue_plot(days: list[tuple[dt.date, float, float]]) -> str | None:
    """Revenue and net revenue per day."""
    if not days:
        return None
    figure, axes = _figure(10, 3.5)
    axes.plot([d for d, _, _ in days], [r for _, r, _ in days], color="#1565c0", label="revenue")
    axes.plot([d for d, _, _ in days], [n for _, _, n in days], color="#ef6c00", label="net of returns")
    axes.set_ylabel("£ per day")
    axes.legend(fontsize=8)
    figure.autofmt_xdate()
    return _svg(figure)


def streaming_plot(batches: list[tuple[int, int, float]]) -> str | None:
    """Rows and processing rate of each micro-batch of the ingest query."""
    if not batches:
        return None
    figure, axes = _figure(9, 3.2)
    ids = [b for b, _, _ in batches]
    axes.bar(ids, [rows for _, rows, _ in batches], color="#90caf9", label="rows in the batch")
    axes.set_xlabel("micro-batch")
    axes.set_ylabel("rows")
    rate = axes.twinx()
    rate.plot(ids, [r for _, _, r in batches], color="#0d47a1", marker="o", label="rows / second")
    rate.set_ylabel("rows processed per second")
    axes.legend(loc="upper left", fontsize=8)
    rate.legend(loc="upper right", fontsize=8)
    return _svg(figure)


def _layer_of(dataset: str) -> str:
    layer = dataset.split("/", 1)[0]
    return layer if "/" in dataset and layer in LAYER_ORDER else "source"


def lineage_edges(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """``(input, output)`` of every write recorded, audit tables left out (they would hide the flow)."""
    edges = set()
    for event in events:
        if event["kind"] != "write" or _layer_of(event["dataset"]) == "source":
            continue
        for source in event["inputs"] or []:
            if not str(source["dataset"]).startswith("audit/"):
                edges.add((str(source["dataset"]), str(event["dataset"])))
    return edges


def lineage_plot(edges: set[tuple[str, str]]) -> str | None:
    """The datasets as boxes in columns by layer, arrows from what was read to what was written."""
    if not edges:
        return None
    nodes = sorted({n for edge in edges for n in edge}, key=lambda n: (LAYER_ORDER.index(_layer_of(n)), n))
    columns: dict[str, list[str]] = {layer: [] for layer in LAYER_ORDER}
    for node in nodes:
        columns[_layer_of(node)].append(node)
    height = max(len(c) for c in columns.values())
    figure, axes = _figure(12, 0.6 * height + 1)
    axes.axis("off")
    position = {}
    for column, layer in enumerate(LAYER_ORDER):
        for row, node in enumerate(columns[layer]):
            position[node] = (column * 3.0, -(row + (height - len(columns[layer])) / 2) * 1.0)
    for source, target in sorted(edges):
        (x0, y0), (x1, y1) = position[source], position[target]
        axes.annotate(
            "",
            xy=(x1 - 1.15, y1),
            xytext=(x0 + 1.15, y0),
            arrowprops={"arrowstyle": "->", "color": "#78909c", "lw": 0.8},
        )
    colors = {"source": "#eceff1", "bronze": "#d7ccc8", "silver": "#e0e0e0", "gold": "#ffe082", "mesh": "#c5e1a5"}
    for node, (x, y) in position.items():
        # An external source by the last two parts of its path ("data/online_retail").
        label = node if _layer_of(node) != "source" else "/".join(node.rstrip("/").split("/")[-2:])
        label = label if len(label) <= 34 else "…" + label[-33:]
        axes.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=7,
            bbox={"boxstyle": "round", "facecolor": colors[_layer_of(node)], "edgecolor": "#546e7a"},
        )
    axes.set_xlim(-1.5, 3.0 * (len(LAYER_ORDER) - 1) + 1.5)
    axes.set_ylim(-height, 1)
    return _svg(figure)


# --- the page


def _section(identifier: str, title: str, body: str | None, note: str = "") -> str:
    content = body if body is not None else "<p class='empty'>nothing recorded yet</p>"
    text = f"<p>{html.escape(note)}</p>" if note else ""
    return (
        f"<section id='{identifier}'><h2>{html.escape(title)}</h2>{text}<div class='figure'>{content}</div></section>"
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(root: str, sections: list[str]) -> str:
    """The report's HTML page around its ``sections``."""
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Lakehouse ETL suite: demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #263238; }}
h1 {{ margin-bottom: 0; }} h2 {{ border-bottom: 1px solid #cfd8dc; padding-bottom: .2rem; }}
table {{ border-collapse: collapse; font-size: .9rem; }} td, th {{ padding: .2rem .8rem; text-align: left; }}
tbody tr:nth-child(odd) {{ background: #f5f7f8; }} .figure svg {{ max-width: 100%; height: auto; }}
.empty {{ color: #90a4ae; }}
</style></head>
<body><h1>Lakehouse ETL suite: demo report</h1>
<p>Lakehouse <code>{html.escape(root)}</code>, generated {generated}.</p>
{"".join(sections)}
</body></html>
"""


def _summary_rows(run: DemoRun) -> list[list[object]]:
    """One row per table of the lakehouse: its name, rows, version and quality score."""
    scores = quality_scores(run)
    return [
        [
            f"{i.layer}/{i.table}",
            f"{i.rows:,}",
            i.version,
            f"{scores[f'{i.layer}/{i.table}']:.2f}" if f"{i.layer}/{i.table}" in scores else "-",
        ]
        for i in list_tables(run.config.lakehouse.root)
    ]


def build_report(run: DemoRun) -> str:
    """The report page: steps, summary tables, and the plots."""
    root = run.config.lakehouse.root
    tables = _summary_rows(run)
    steps = [[s.name, f"{s.rows_written:,}", f"{s.seconds:.1f}", s.detail] for s in run.steps]
    anomalies = _query(
        run, "SELECT anomaly_score, is_anomaly FROM a WHERE anomaly_score IS NOT NULL", a="gold/purchase_anomalies"
    )
    flagged = [score for score, is_anomaly in anomalies if is_anomaly]
    churn = _query(run, "SELECT churn_probability FROM c WHERE churn_probability IS NOT NULL", c="gold/churn_scores")
    bands = dict(_query(run, "SELECT churn_risk, count(*) FROM c GROUP BY 1", c="gold/churn_scores"))
    days = _query(
        run,
        "SELECT invoice_day, sum(revenue)::DOUBLE, sum(net_revenue)::DOUBLE FROM d GROUP BY 1 ORDER BY 1",
        d="gold/daily_revenue",
    )
    batches = _query(
        run,
        """SELECT batch_id, num_input_rows, processed_rows_per_second FROM p
           WHERE query_name NOT LIKE '%views' AND num_input_rows > 0 ORDER BY run_id, batch_id""",
        p="audit/stream_progress",
    )
    from etl_lib.lineage.query import load_events

    reconcile = run.metrics("reconcile")
    sections = [
        "<section id='steps'><h2>Steps</h2>"
        + _table(["job", "rows written", "seconds", "detail"], steps)
        + "</section>",
        "<section id='summary'><h2>Tables</h2>"
        + _table(["table", "rows", "version", "quality score"], tables)
        + (f"<p id='reconciliation'>{html.escape(str(reconcile.get('summary')))}</p>" if reconcile else "")
        + "</section>",
        _section("quality", "Quality: each rule's passing share", quality_plot(quality_rules(run))),
        _section(
            "anomalies",
            "Anomaly scores of purchase lines",
            anomaly_plot([float(s) for s, _ in anomalies], min(flagged) if flagged else None),
            f"{len(flagged):,} of {len(anomalies):,} purchase lines are anomalous",
        ),
        _section(
            "churn",
            "Churn risk",
            churn_plot(
                [float(p) for (p,) in churn],
                {str(k): int(v) for k, v in bands.items()},
                run.config.ml.churn.risk_bands,
            ),
        ),
        _section("revenue", "Revenue by day", revenue_plot([(d, r, n) for d, r, n in days])),
        _section(
            "streaming",
            "Streaming: rows and rate per micro-batch",
            streaming_plot([(int(b), int(n), float(r or 0)) for b, n, r in batches]),
        ),
        _section("lineage", "Lineage of the run", lineage_plot(lineage_edges(load_events(root)))),
    ]
    return _page(root, sections)


def write_report(run: DemoRun, path: Path) -> None:
    """Write the report page to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(run), encoding="utf-8")
