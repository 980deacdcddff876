-- The warehouse schema: customers, workflows, their definitions and history, the sync ledger,
-- dead letters, validation issues, and the staging tables the DAG's tasks hand data through.

CREATE SCHEMA IF NOT EXISTS zuora;

CREATE TABLE zuora.customers (
    customer_id   text PRIMARY KEY CHECK (customer_id <> ''),
    name          text NOT NULL,
    zuora_conn_id text NOT NULL,
    environment   text NOT NULL CHECK (environment IN ('production', 'sandbox')),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN zuora.customers.zuora_conn_id IS 'Airflow connection holding the customer''s Zuora OAuth client';
COMMENT ON COLUMN zuora.customers.environment IS 'expected Zuora environment; a sync against the other kind of host is refused';

CREATE TABLE zuora.workflows (
    customer_id        text NOT NULL REFERENCES zuora.customers,
    zuora_id           bigint NOT NULL,
    name               text,
    description        text,
    status             text,
    type               text,
    ondemand_trigger   boolean,
    callout_trigger    boolean,
    scheduled_trigger  boolean,
    interval           text,
    timezone           text,
    timezone_iana      text,
    priority           text,
    active_version_id  bigint,
    active_version     text,
    zuora_created_at   timestamptz,
    zuora_updated_at   timestamptz,
    content_hash       text NOT NULL,
    first_seen_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at       timestamptz NOT NULL DEFAULT now(),
    last_changed_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    validation_status  text NOT NULL DEFAULT 'valid' CHECK (validation_status IN ('valid', 'warning', 'invalid')),
    list_item          jsonb NOT NULL,
    last_run_id        text NOT NULL,
    PRIMARY KEY (customer_id, zuora_id)
);
COMMENT ON COLUMN zuora.workflows.timezone IS 'time zone as Zuora gives it (a Rails name such as "Eastern Time (US & Canada)")';
COMMENT ON COLUMN zuora.workflows.timezone_iana IS 'derived: the IANA name for timezone';
COMMENT ON COLUMN zuora.workflows.last_seen_at IS 'when a run last wrote this row; rows are not rewritten when unchanged, so use zuora.current_workflows.last_seen_at for "seen in the latest listing"';
COMMENT ON COLUMN zuora.workflows.content_hash IS 'sha256 of the list item (canonical JSON) and the exported priority';

CREATE INDEX workflows_current_idx ON zuora.workflows (customer_id) WHERE deleted_at IS NULL;

CREATE TABLE zuora.workflow_definitions (
    customer_id        text NOT NULL,
    zuora_id           bigint NOT NULL,
    version            text,
    definition         jsonb NOT NULL,
    definition_hash    text NOT NULL,
    task_count         integer NOT NULL,
    linkage_count      integer NOT NULL,
    size_bytes         integer NOT NULL,
    exported_at        timestamptz NOT NULL,
    run_id             text NOT NULL,
    original_hash      text NOT NULL,
    original_encrypted bytea,
    PRIMARY KEY (customer_id, zuora_id),
    FOREIGN KEY (customer_id, zuora_id) REFERENCES zuora.workflows
);
COMMENT ON COLUMN zuora.workflow_definitions.definition IS 'the export {workflow, tasks, linkages} with secret values replaced by "***REDACTED***"';
COMMENT ON COLUMN zuora.workflow_definitions.original_encrypted IS 'the exact original export: zlib-compressed JSON in a Fernet token; NULL when no key was configured';
COMMENT ON COLUMN zuora.workflow_definitions.original_hash IS 'sha256 of the original export (not readable by zuora_reader)';

CREATE TABLE zuora.workflow_history (
    history_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id       text NOT NULL,
    zuora_id          bigint NOT NULL,
    run_id            text NOT NULL,
    change_kind       text NOT NULL CHECK (change_kind IN ('insert', 'update', 'delete', 'restore')),
    changed_at        timestamptz NOT NULL DEFAULT now(),
    zuora_updated_at  timestamptz,
    old_hash          text,
    new_hash          text,
    changed_fields    text[] NOT NULL DEFAULT '{}',
    snapshot          jsonb NOT NULL
);
COMMENT ON TABLE zuora.workflow_history IS 'append-only; snapshot = the workflow row after the change, with its (redacted) definition';
CREATE INDEX workflow_history_workflow_idx ON zuora.workflow_history (customer_id, zuora_id, changed_at);
CREATE INDEX workflow_history_changed_at_idx ON zuora.workflow_history (changed_at);

CREATE TABLE zuora.sync_runs (
    run_id             text NOT NULL,
    customer_id        text NOT NULL,
    status             text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'success', 'failed')),
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    duration_seconds   double precision,
    api_requests       integer NOT NULL DEFAULT 0,
    token_mints        integer NOT NULL DEFAULT 0,
    rate_limited       integer NOT NULL DEFAULT 0,
    retries            integer NOT NULL DEFAULT 0,
    pages              integer NOT NULL DEFAULT 0,
    listed             integer NOT NULL DEFAULT 0,
    listing_complete   boolean,
    exported           integer NOT NULL DEFAULT 0,
    exports_unchanged  integer NOT NULL DEFAULT 0,
    exports_failed     integer NOT NULL DEFAULT 0,
    inserted           integer NOT NULL DEFAULT 0,
    updated            integer NOT NULL DEFAULT 0,
    unchanged          integer NOT NULL DEFAULT 0,
    deleted            integer NOT NULL DEFAULT 0,
    restored           integer NOT NULL DEFAULT 0,
    stale              integer NOT NULL DEFAULT 0,
    invalid            integer NOT NULL DEFAULT 0,
    stored             integer NOT NULL DEFAULT 0,
    dead_lettered      integer NOT NULL DEFAULT 0,
    definitions_changed integer NOT NULL DEFAULT 0,
    error              text,
    zuora_conn_id      text,
    zuora_environment  text,
    PRIMARY KEY (run_id, customer_id)
);
COMMENT ON COLUMN zuora.sync_runs.rate_limited IS 'HTTP 429 answers received';
COMMENT ON COLUMN zuora.sync_runs.exports_unchanged IS 'listed workflows not exported because nothing changed';
COMMENT ON COLUMN zuora.sync_runs.dead_lettered IS 'list items that could not be stored; listed = stored + dead_lettered';
CREATE INDEX sync_runs_customer_idx ON zuora.sync_runs (customer_id, started_at);

CREATE TABLE zuora.dead_letters (
    dead_letter_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id      text NOT NULL,
    run_id           text NOT NULL,
    stage            text NOT NULL CHECK (stage IN ('list', 'export', 'validate', 'upsert', 'task')),
    zuora_id         bigint,
    item_key         text NOT NULL DEFAULT '',
    error_type       text NOT NULL,
    message          text NOT NULL,
    payload          jsonb,
    attempts         integer NOT NULL DEFAULT 1,
    first_failed_at  timestamptz NOT NULL DEFAULT now(),
    last_failed_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolved_run_id  text
);
COMMENT ON COLUMN zuora.dead_letters.item_key IS 'what failed: the workflow id, a hash of an id-less payload, or '''' for the whole stage';
COMMENT ON COLUMN zuora.dead_letters.payload IS 'the failing item with secrets redacted';
CREATE UNIQUE INDEX dead_letters_open_idx ON zuora.dead_letters (customer_id, stage, item_key)
    WHERE resolved_at IS NULL;

CREATE TABLE zuora.validation_issues (
    issue_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  text NOT NULL,
    zuora_id     bigint,
    run_id       text NOT NULL,
    rule         text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    detail       text NOT NULL,
    field        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX validation_issues_run_idx ON zuora.validation_issues (run_id, customer_id);
CREATE INDEX validation_issues_workflow_idx ON zuora.validation_issues (customer_id, zuora_id);

-- Staging: one listing per (run_id, customer_id), its items, the validated rows, the exports.
-- Logged tables on purpose: after a crash a listing must never survive without its items.
CREATE TABLE zuora.staging_listings (
    run_id        text NOT NULL,
    customer_id   text NOT NULL,
    complete      boolean NOT NULL,
    listed        integer NOT NULL,
    listed_at     timestamptz NOT NULL DEFAULT now(),
    validated_at  timestamptz,
    PRIMARY KEY (run_id, customer_id)
);

CREATE TABLE zuora.staging_list_items (
    run_id        text NOT NULL,
    customer_id   text NOT NULL,
    position      integer NOT NULL,
    zuora_id      bigint,
    item          jsonb,
    item_hash     text NOT NULL,
    repairs       text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, customer_id, position)
);
CREATE INDEX staging_list_items_id_idx ON zuora.staging_list_items (run_id, customer_id, zuora_id);

CREATE TABLE zuora.staging_workflows (
    run_id             text NOT NULL,
    customer_id        text NOT NULL,
    position           integer NOT NULL,
    zuora_id           bigint,
    disposition        text NOT NULL CHECK (disposition IN ('store', 'dead_letter')),
    reason             text,
    name               text,
    description        text,
    status             text,
    type               text,
    ondemand_trigger   boolean,
    callout_trigger    boolean,
    scheduled_trigger  boolean,
    interval           text,
    timezone           text,
    timezone_iana      text,
    active_version_id  bigint,
    active_version     text,
    zuora_created_at   timestamptz,
    zuora_updated_at   timestamptz,
    validation_status  text NOT NULL,
    PRIMARY KEY (run_id, customer_id, position)
);

CREATE TABLE zuora.staging_exports (
    run_id             text NOT NULL,
    customer_id        text NOT NULL,
    zuora_id           bigint NOT NULL,
    ok                 boolean NOT NULL,
    version            text,
    priority           text,
    definition         jsonb,
    definition_hash    text,
    task_count         integer,
    linkage_count      integer,
    size_bytes         integer,
    original_json      text,
    original_hash      text,
    original_encrypted bytea,
    repairs            text[] NOT NULL DEFAULT '{}',
    error_type         text,
    error_message      text,
    payload            jsonb,
    exported_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staging_exports_key_idx ON zuora.staging_exports (run_id, customer_id, zuora_id);
COMMENT ON COLUMN zuora.staging_exports.original_json IS 'plaintext original until the merge encrypts it; never granted to readers';
