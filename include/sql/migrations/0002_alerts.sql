-- Alerts raised by the zuora_sync_monitor DAG, kept so they can be queried.
CREATE TABLE zuora.alerts (
    alert_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raised_at  timestamptz NOT NULL DEFAULT now(),
    kind       text NOT NULL,
    severity   text NOT NULL CHECK (severity IN ('warning', 'critical')),
    title      text NOT NULL,
    details    jsonb NOT NULL DEFAULT '{}',
    channel    text NOT NULL
);
CREATE INDEX alerts_raised_idx ON zuora.alerts (raised_at);
