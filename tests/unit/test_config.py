from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from etl_lib.config import (
    REDACTED,
    JdbcSourceConfig,
    apply_overrides,
    load_config,
    override_path,
    redact,
    validate_config,
)
from etl_lib.errors import ConfigError
from etl_lib.io.sources.jdbc import quote_column

PROJECT = Path(__file__).resolve().parents[2]

MINIMAL = """
app: {environment: unit}
lakehouse: {root: /lake}
spark: {session: local}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_shipped_config_file_is_valid() -> None:
    files = sorted((PROJECT / "conf").glob("*.yaml"))  # conf/base/ holds what they extend, not environments
    names = ["databricks.yaml", "emr.yaml", "glue.yaml", "local.yaml", "services.yaml", "test.yaml"]
    assert [f.name for f in files] == names
    for file in files:
        config = load_config(file)
        assert config.source_file == str(file)


def test_embedded_default_is_conf_local_yaml() -> None:
    config = load_config()
    assert config.app.environment == "local"
    assert config.spark.session == "local"
    assert config.source_file == str(PROJECT / "conf" / "local.yaml")


def test_relative_paths_are_taken_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, MINIMAL.replace("/lake", "./lake")))
    assert config.lakehouse.root == str(tmp_path / "lake")
    assert config.lakehouse.table_path("bronze", "orders") == f"{tmp_path}/lake/bronze/orders"
    assert config.lakehouse.checkpoint_path("silver", "orders") == f"{tmp_path}/lake/_checkpoints/silver/orders"


def test_uris_are_kept_as_written(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL.replace("/lake", "s3://bucket/lake/")))
    assert config.lakehouse.table_path("gold", "daily_revenue") == "s3://bucket/lake/gold/daily_revenue"


def test_missing_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("lakehouse: {root: /lake}\n", ""))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: invalid configuration\n  lakehouse: required key is missing"


def test_misspelt_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("root:", "rot:"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid configuration")
    assert "  lakehouse.rot: unknown key (check the spelling, or remove it)" in message
    assert "  lakehouse.root: required key is missing" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "services: {kafka: {port: many}}\n")
    with pytest.raises(ConfigError, match=r"services\.kafka\.port: Input should be a valid integer"):
        load_config(path)


def test_wrong_choice_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("session: local", "session: cloud"))
    with pytest.raises(ConfigError, match=r"spark\.session: Input should be 'local' or 'platform'"):
        load_config(path)


def test_bad_table_identifier_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "sources: {x: {kind: files, path: /in, format: csv, table: Orders-2024}}\n"
    with pytest.raises(ConfigError, match=r"sources\.x\.table: .*not a table identifier"):
        load_config(write(tmp_path, text))


def test_source_kind_is_required_and_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources\.x: required key `kind` is missing \(files or jdbc\)"):
        load_config(write(tmp_path, MINIMAL + "sources: {x: {path: /in, format: csv, table: t}}\n"))
    with pytest.raises(ConfigError, match=r"sources\.x: kind: 'ftp' is not one of 'files', 'jdbc'"):
        load_config(write(tmp_path, MINIMAL + "sources: {x: {kind: ftp, table: t}}\n"))


JDBC = """
  orders:
    kind: jdbc
    url: jdbc:postgresql://db:5432/erp
    user: etl
    password_env: ERP_PASSWORD
    source_table: public.orders
    table: orders
    watermark_column: updated_at
"""


def test_jdbc_source_names_are_validated(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "sources:" + JDBC))
    assert config.sources["orders"].kind == "jdbc"
    bad = JDBC.replace("public.orders", "orders; DROP TABLE x")
    with pytest.raises(ConfigError, match=r"sources\.orders\.source_table: .*is not a table or column name"):
        load_config(write(tmp_path, MINIMAL + "sources:" + bad))
    # The watermark and partition columns are the database's own names, quoted where they are read.
    spaced = JDBC.replace("watermark_column: updated_at", 'watermark_column: Last "Modified"\n    partition_column: N°')
    source = load_config(write(tmp_path, MINIMAL + "sources:" + spaced)).sources["orders"]
    assert isinstance(source, JdbcSourceConfig)
    assert (quote_column(source.watermark_column), source.partition_column) == ('"Last ""Modified"""', "N°")


def test_sources_must_map_every_column_of_their_entity(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "entities: {lines: {columns: {a: string, b: int}, required: [a]}}\n"
        + "sources: {x: {kind: files, path: /in, format: csv, table: t, entity: lines, columns: {a: A, c: C}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert str(caught.value).endswith(
        "  sources.x.columns: must map every column of entity 'lines'; missing b; not in the entity c"
    )


def test_entity_types_and_bands_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"entities\.lines\.columns\.a: 'varchar' is not a supported column type"):
        load_config(write(tmp_path, MINIMAL + "entities: {lines: {columns: {a: varchar}}}\n"))
    with pytest.raises(ConfigError, match=r"entities\.lines: required names columns that are not declared: z"):
        load_config(write(tmp_path, MINIMAL + "entities: {lines: {columns: {a: int}, required: [z]}}\n"))
    base = load_config(PROJECT / "conf" / "local.yaml")
    segments = base.batch.customer_segments  # type: ignore[union-attr]
    assert (segments.names, segments.edges, segments.right) == (["Low", "Medium", "High"], [100, 1000], True)
    assert segments.describe() == "Low <= 100 < Medium <= 1000 < High"
    assert base.ml.churn.risk_bands.describe() == "Low <= 0.3 < Medium <= 0.7 < High"
    with pytest.raises(ConfigError, match=r"batch\.price_categories: .*band edges must increase"):
        load_config(
            PROJECT / "conf" / "local.yaml",
            ["batch.price_categories=[{name: a, upper: 200}, {name: b, upper: 50}, {name: c}]"],
        )
    with pytest.raises(ConfigError, match=r"batch\.price_categories: .*the last band has none"):
        load_config(
            PROJECT / "conf" / "local.yaml", ["batch.price_categories=[{name: a, upper: 200}, {name: b, upper: 300}]"]
        )
    # A list alone is the bands with an edge in the band below it; the other side is a setting of the list.
    left = load_config(
        PROJECT / "conf" / "local.yaml",
        ["batch.customer_segments={right: false, bands: [{name: a, upper: 10}, {name: b}]}"],
    ).batch.customer_segments  # type: ignore[union-attr]
    assert (left.right, left.describe()) == (False, "a < 10 <= b")


def test_a_file_extends_another(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("app: {environment: base}\nlakehouse: {root: /base}\nspark: {session: local}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nlakehouse: {root: /child}\n")
    config = load_config(tmp_path / "child.yaml")
    assert (config.app.environment, config.lakehouse.root) == ("base", "/child")
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="`extends` makes a cycle"):
        load_config(tmp_path / "loop.yaml")


def test_missing_file_and_non_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: configuration file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"expected a mapping at the top level, found list"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match=r"not valid YAML"):
        load_config(write(tmp_path, "app: [unclosed\n"))


def test_overrides_are_typed_and_applied_in_order(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        [
            "services.kafka.port=1234",
            "services.kafka.port=2345",
            "run.process_date=2011-12-09",
            "spark.conf.spark.sql.shuffle.partitions=3",
            "spark.conf.spark.ui.enabled=false",
        ],
    )
    assert config.services.kafka.port == 2345
    assert config.run.process_date == dt.date(2011, 12, 9)
    # Spark option names keep their dots, and YAML scalars become Spark's strings.
    assert config.spark.conf == {"spark.sql.shuffle.partitions": "3", "spark.ui.enabled": "false"}


def test_override_paths_follow_the_model() -> None:
    assert override_path("spark.conf.spark.sql.shuffle.partitions") == ["spark", "conf", "spark.sql.shuffle.partitions"]
    assert override_path("sources.orders.options.header") == ["sources", "orders", "options", "header"]
    assert override_path("sources.orders.table") == ["sources", "orders", "table"]
    assert override_path("nope.a.b") == ["nope", "a", "b"]


def test_bad_overrides_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        load_config(path, ["lakehouse.root"])
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        load_config(path, ["lakehouse..root=x"])
    with pytest.raises(ConfigError, match=r"lakehouse\.root is a value, not a section"):
        apply_overrides({"lakehouse": {"root": "/x"}}, ["lakehouse.root.deeper=1"])
    with pytest.raises(ConfigError, match=r"lakehouse\.bogus: unknown key"):
        load_config(path, ["lakehouse.bogus=1"])


def test_config_is_frozen() -> None:
    config = validate_config({"app": {"environment": "x"}, "lakehouse": {"root": "/l"}, "spark": {"session": "local"}})
    with pytest.raises(Exception, match="frozen"):
        config.lakehouse.root = "/elsewhere"  # type: ignore[misc]


def test_redaction_hides_secrets_but_not_where_they_come_from() -> None:
    data = {
        "spark": {
            "conf": {
                "spark.hadoop.fs.s3a.secret.key": "AKIA-very-secret",
                "spark.sql.catalog.x.uri": "jdbc:postgresql://etl:hunter2@db:5432/x",
                "spark.sql.catalog.y.uri": "jdbc:postgresql://db:5432/y?user=etl&password=swordfish&ssl=true",
            }
        },
        "services": {"postgres": {"password_env": "ETL_SUITE_PG_PASSWORD"}},
    }
    shown = redact(data)
    assert shown == {
        "spark": {
            "conf": {
                "spark.hadoop.fs.s3a.secret.key": REDACTED,
                "spark.sql.catalog.x.uri": f"jdbc:postgresql://etl:{REDACTED}@db:5432/x",
                "spark.sql.catalog.y.uri": f"jdbc:postgresql://db:5432/y?user=etl&password={REDACTED}&ssl=true",
            }
        },
        "services": {"postgres": {"password_env": "ETL_SUITE_PG_PASSWORD"}},
    }


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("spark.conf.spark.hadoop.fs.s3a.secret.key=AKIA-very-secret", "spark.conf.spark.hadoop.fs.s3a.secret.key"),
        ("spark.conf.spark.hadoop.fs.s3a.access.key=AKIAEXAMPLE", "spark.conf.spark.hadoop.fs.s3a.access.key"),
        (
            "spark.conf.spark.hadoop.fs.s3a.session.token=FwoGZXIvYXdzEXAMPLE",
            "spark.conf.spark.hadoop.fs.s3a.session.token",
        ),
        ("spark.conf.spark.sql.catalog.x.uri=jdbc:postgresql://etl:hunter2@db/x", "spark.conf.spark.sql.catalog.x.uri"),
        ("spark.conf.kafka.sasl.jaas.config=x required username=u password=p;", "spark.conf.kafka.sasl.jaas.config"),
        ("sources.db.password=hunter2", "sources.db.password"),
        ("privacy.hash_key_secret=hunter2", "privacy.hash_key_secret"),  # a secret where its reference goes
        (
            "spark.conf.spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net=a2V5",
            "spark.conf.spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net",
        ),
        ("spark.conf.spark.hadoop.fs.s3.awsSecretAccessKey=AKIA/x", "spark.conf.spark.hadoop.fs.s3.awsSecretAccessKey"),
    ],
)
def test_secrets_written_in_configuration_are_refused(tmp_path: Path, override: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, MINIMAL), [override])
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'env.yaml'}: secrets are never written in configuration")
    assert f"found one under {key};" in message
    assert override.partition("=")[2] not in message


def test_what_names_a_secret_is_not_one(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        [
            "spark.conf.spark.hadoop.fs.s3a.aws.credentials.provider=com.amazonaws.auth.EnvironmentVariableCredentialsProvider",
            "spark.conf.spark.redaction.regex=(?i)secret|password",
            "spark.conf.spark.hadoop.fs.s3a.delegation.token.binding=org.example.Binding",
            "spark.conf.spark.security.credentials.renewalRatio=0.75",
            "spark.conf.spark.hadoop.fs.azure.sas.token.provider.type=org.example.SasProvider",
            "spark.conf.spark.sql.catalog.x.uri=https://catalog:8443/api/user@example",
            "lineage.openlineage.api_key_secret=aws-secretsmanager:lineage#api_key",
            "privacy.hash_key_secret=env:PII_KEY",
        ],
    )
    assert config.lineage.openlineage.api_key_secret == "aws-secretsmanager:lineage#api_key"
    assert config.privacy.hash_key_secret == "env:PII_KEY"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("privacy.hash_key_secret=databricks:no-key", "a Databricks secret is databricks:SCOPE/KEY"),
        ("services.kafka.host=0.0.0.0", "'0.0.0.0' is not a loopback address"),
        ("services.postgres.host=10.1.2.3", "'10.1.2.3' is not a loopback address"),
    ],
)
def test_secret_references_and_service_addresses_are_checked(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, MINIMAL), [override])


def test_pii_columns_must_be_text_columns_of_the_entity_and_hashing_needs_a_key() -> None:
    base = load_config(PROJECT / "conf" / "local.yaml").model_dump(mode="json")
    with pytest.raises(ConfigError, match=r"privacy.hash_key_secret: personal columns need the key"):
        validate_config({**base, "privacy": {"pii": {"events": {"customer_id": "hash"}}}})
    with pytest.raises(ConfigError, match=r"privacy.hash_key_secret: personal columns need the key"):
        validate_config({**base, "privacy": {"pii": {"events": {"user_agent": "mask"}}}})
    with pytest.raises(ConfigError, match=r"privacy.pii.events.event_id: the stream deduplicates by event_id"):
        validate_config({**base, "privacy": {"pii": {"events": {"event_id": "hash"}}, "hash_key_secret": "env:K"}})
    with pytest.raises(ConfigError, match=r"privacy.pii.events.quantity: only text columns"):
        validate_config({**base, "privacy": {"pii": {"events": {"quantity": "mask"}}}})
    with pytest.raises(ConfigError, match=r"privacy.pii.people: no entity 'people'"):
        validate_config({**base, "privacy": {"pii": {"people": {"name": "mask"}}}})
    config = validate_config(
        {
            **base,
            "privacy": {"pii": {"events": {"customer_id": "hash", "user_agent": "mask"}}, "hash_key_secret": "env:K"},
        }
    )
    assert config.privacy.pii == {"events": {"customer_id": "hash", "user_agent": "mask"}}


def test_rule_columns_and_keys_are_any_names_an_extract_has(tmp_path: Path) -> None:
    # Names as ERPs and spreadsheets export them; each is a quoted identifier where it is read, so even one that
    # looks like SQL is only a (strange) name (tests/spark/test_batch_layer.py reads such columns).
    rules = (
        "quality:\n  tables:\n    silver/x:\n      key: [{key}]\n      rules:\n"
        "        - {{name: r, type: completeness, column: {column}}}\n"
    )
    for name in ("InvoiceNo", "Customer ID", "Unit Price (£)", "Qté", "1st order", "a) OR (1=1", "id; drop"):
        quoted = json.dumps(name, ensure_ascii=False)
        config = load_config(write(tmp_path, MINIMAL + rules.format(key=quoted, column=quoted)))
        table = config.quality.tables["silver/x"]
        assert (table.key, table.rules[0].column) == ([name], name)
    for blank_or_control in ('"  "', '"Customer\\nID"', '"a\\tb"'):
        with pytest.raises(ConfigError, match=r"is not a column name \(blank, or holding a control character\)"):
            load_config(write(tmp_path, MINIMAL + rules.format(key="id", column=blank_or_control)))


def test_null_over_an_inherited_mapping_removes_it(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        f"extends: {PROJECT / 'conf' / 'local.yaml'}\nsources:\n  online_retail: null\n", encoding="utf-8"
    )
    assert load_config(tmp_path / "child.yaml").sources == {}
    services = load_config(PROJECT / "conf" / "services.yaml")
    assert (sorted(services.sources), services.speed.source) == (["orders_db"], "kafka")


def test_without_a_checkout_and_without_conf_the_error_says_to_pass_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Installed from the wheel (as on a platform), the library has no conf/local.yaml of its own to fall back on.
    from etl_lib.config import loader

    monkeypatch.setattr(loader, "project_root", lambda: None)
    with pytest.raises(ConfigError, match=r"installed package, not a checkout .*pass --conf PATH"):
        load_config()
    monkeypatch.undo()
    assert load_config().app.environment == "local"  # from the checkout, the embedded default


def test_a_workbook_source_names_its_sheet_and_header_row_and_only_it_does(tmp_path: Path) -> None:
    workbook = "sources: {x: {kind: files, path: /in, format: xlsx, table: t, sheet: Sales, header_row: 3}}\n"
    source = load_config(write(tmp_path, MINIMAL + workbook)).sources["x"]
    assert (source.sheet, source.header_row) == ("Sales", 3)  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"sources\.x: .*sheet and header_row are for an xlsx source, not csv"):
        load_config(write(tmp_path, MINIMAL + workbook.replace("xlsx", "csv")))
    with pytest.raises(ConfigError, match=r"sources\.x: .*options are Spark reader options"):
        load_config(write(tmp_path, MINIMAL + workbook.replace("header_row: 3", "options: {sep: ';'}")))
    with pytest.raises(ConfigError, match=r"sources\.x\.header_row: Input should be greater than or equal to 1"):
        load_config(write(tmp_path, MINIMAL + workbook.replace("header_row: 3", "header_row: 0")))
