-- Zuora's version history of each workflow, restores and promotions back into Zuora, and a
-- company's sandbox and production customers paired to compare them.

-- Customers in one tenant group are one company's environments: at most one sandbox and one
-- production each, compared by zuora.environment_drift.
ALTER TABLE zuora.customers ADD COLUMN tenant_group text CHECK (tenant_group <> '');
CREATE UNIQUE INDEX customers_tenant_group_idx ON zuora.customers (tenant_group, environment)
    WHERE tenant_group IS NOT NULL;

-- The id-free summary of a definition (zuora.warehouse.fingerprint): equal fingerprints are
-- equal definitions whatever ids, version numbers and timestamps Zuora gave them.
ALTER TABLE zuora.staging_exports ADD COLUMN fingerprint text, ADD COLUMN settings_hash text,
                                  ADD COLUMN task_hashes jsonb;
ALTER TABLE zuora.workflow_definitions ADD COLUMN fingerprint text, ADD COLUMN settings_hash text,
                                       ADD COLUMN task_hashes jsonb;
-- rows stored before this migration get theirs from zuora.warehouse.versions.fill_fingerprints
CREATE INDEX workflow_definitions_no_fingerprint_idx ON zuora.workflow_definitions (customer_id)
    WHERE fingerprint IS NULL;

CREATE TABLE zuora.workflow_versions (
    customer_id        text NOT NULL,
    zuora_id           bigint NOT NULL,
    version_id         bigint NOT NULL,
    version            text NOT NULL,
    version_order      integer[] NOT NULL,
    name               text,
    status             text,
    zuora_created_at   timestamptz,
    zuora_updated_at   timestamptz,
    listed_at          timestamptz NOT NULL DEFAULT now(),
    run_id             text NOT NULL,
    definition         jsonb,
    definition_hash    text,
    fingerprint        text,
    settings_hash      text,
    task_hashes        jsonb,
    task_count         integer,
    size_bytes         integer,
    original_hash      text,
    original_encrypted bytea,
    exported_at        timestamptz,
    export_error       text,
    PRIMARY KEY (customer_id, zuora_id, version_id)
);
COMMENT ON TABLE zuora.workflow_versions IS 'every version of each workflow as Zuora lists it (GET /workflows/{id}/versions); definition NULL until exported';
COMMENT ON COLUMN zuora.workflow_versions.version_order IS 'the version number as integers, e.g. {1,0,3}: order by it, not by the text';
COMMENT ON COLUMN zuora.workflow_versions.original_encrypted IS 'the exact original export of this version (Fernet, as workflow_definitions); NULL without a key';
COMMENT ON COLUMN zuora.workflow_versions.export_error IS 'why the last export of this version failed; retried on later runs';
CREATE INDEX workflow_versions_pending_idx ON zuora.workflow_versions (customer_id)
    WHERE definition IS NULL;

-- Which workflows have had their versions listed, and when: a workflow not here is listed by
-- the bounded history backfill; one whose list item changed is listed again.
CREATE TABLE zuora.workflow_version_listings (
    customer_id  text NOT NULL,
    zuora_id     bigint NOT NULL,
    item_hash    text NOT NULL,
    listed_at    timestamptz NOT NULL DEFAULT now(),
    versions     integer NOT NULL,
    PRIMARY KEY (customer_id, zuora_id)
);

ALTER TABLE zuora.sync_runs ADD COLUMN versions_listed integer NOT NULL DEFAULT 0,
                            ADD COLUMN versions_exported integer NOT NULL DEFAULT 0,
                            ADD COLUMN versions_failed integer NOT NULL DEFAULT 0,
                            ADD COLUMN versions_pending integer;
COMMENT ON COLUMN zuora.sync_runs.versions_pending IS 'versions (and workflows whose versions were never listed) still to fetch after this run: the history backfill''s progress';

CREATE TABLE zuora.restores (
    restore_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_at        timestamptz NOT NULL DEFAULT now(),
    requested_by        text NOT NULL,
    applied             boolean NOT NULL,
    status              text NOT NULL CHECK (status IN ('planned', 'refused', 'imported', 'failed')),
    source_customer_id  text NOT NULL,
    source_zuora_id     bigint NOT NULL,
    source_version      text,
    source_version_id   bigint,
    target_customer_id  text NOT NULL,
    target_zuora_id     bigint,
    mode                text NOT NULL CHECK (mode IN ('new_version', 'new_workflow')),
    activate            boolean NOT NULL,
    target_state        text,
    new_version         text,
    idempotency_key     text,
    plan                jsonb NOT NULL,
    zuora_status        integer,
    zuora_response      jsonb,
    message             text
);
COMMENT ON TABLE zuora.restores IS 'every restore or promotion, dry runs included (applied = false): who, when, source, target, version and Zuora''s answer';
COMMENT ON COLUMN zuora.restores.target_state IS 'hash of what the target held when the plan was made; an apply whose target changed since its dry run is refused';
CREATE INDEX restores_plan_idx ON zuora.restores (source_customer_id, source_zuora_id, target_customer_id, requested_at);
