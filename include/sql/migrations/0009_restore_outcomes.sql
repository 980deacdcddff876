-- Restores whose answer may be lost (zuora.restore): an import is sent once, never again after a
-- timeout, a reset or a 5xx (Zuora may have performed it); such an apply is 'unknown' until the
-- next dry run reads Zuora and settles it as 'imported' or 'not_imported' (settled_at). A
-- request refused before its plan was made is a row too; its scope is NULL when a customer it
-- names is not in zuora.customers.
ALTER TABLE zuora.restores DROP CONSTRAINT restores_status_check;
ALTER TABLE zuora.restores ADD CONSTRAINT restores_status_check
    CHECK (status IN ('planned', 'refused', 'applying', 'imported', 'failed', 'unknown', 'not_imported'));
ALTER TABLE zuora.restores ALTER COLUMN scope DROP NOT NULL;
ALTER TABLE zuora.restores ADD COLUMN zuora_request_id text,
                           ADD COLUMN sent_fingerprint text,
                           ADD COLUMN settled_at timestamptz;
COMMENT ON COLUMN zuora.restores.zuora_request_id IS 'Zuora-Request-Id of the answer to a failed or unknown import, when Zuora gave one';
COMMENT ON COLUMN zuora.restores.sent_fingerprint IS 'fingerprint (zuora.warehouse.fingerprint, secrets redacted) of the content an apply sent: a dry run settling an unknown outcome looks for it in Zuora';
COMMENT ON COLUMN zuora.restores.settled_at IS 'when a dry run read Zuora and settled this apply''s unknown outcome as imported or not_imported';

-- At most one 'imported' row per Idempotency-Key is a rule about Zuora's answers: a row a dry
-- run settled from what Zuora holds is outside it. The predicate of 0005 is kept as it was.
DO $$
DECLARE
    kept text := (SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i
                   WHERE i.indexrelid = 'zuora.restores_one_import_per_key'::regclass);
BEGIN
    DROP INDEX zuora.restores_one_import_per_key;
    EXECUTE format('CREATE UNIQUE INDEX restores_one_import_per_key ON zuora.restores (idempotency_key) '
                   'WHERE %s AND settled_at IS NULL', kept);
END $$;
