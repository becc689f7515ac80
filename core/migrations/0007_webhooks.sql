-- Webhooks: hooks on an organization or one of its projects, the deliveries of the events
-- they match, and every attempt at each delivery.

CREATE TABLE webhooks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id      bigint REFERENCES projects (id) ON DELETE CASCADE,  -- NULL: every project
    url             text NOT NULL,
    events          text[] NOT NULL,  -- the event kinds it receives
    secret          text NOT NULL,    -- the HMAC key; never read back through the API
    active          boolean NOT NULL DEFAULT true,
    last_success_at timestamptz,      -- its last delivery answered with 2xx
    disabled_at     timestamptz,
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL))
);
CREATE INDEX webhooks_organization ON webhooks (organization_id, id);
CREATE INDEX webhooks_project ON webhooks (project_id, id) WHERE project_id IS NOT NULL;

-- One row per (hook, event) to deliver, and one per redelivery. PENDING rows are claimed
-- by any server process with FOR UPDATE SKIP LOCKED; a claim moves `next_attempt_at` past
-- the attempt's deadline (a lease), so a delivery whose process died is claimed again.
-- `attempts` counts claims: a process records its outcome only while the count is the one
-- it claimed (a fencing token). `body` is written once, before the first attempt, and sent
-- as it is by every retry and redelivery (its signature too).
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        bigint,  -- no foreign key: pruning the event log need not touch this
    kind            text NOT NULL,
    guid            uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    state           text NOT NULL DEFAULT 'PENDING'
                    CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    body            text,
    redelivery      boolean NOT NULL DEFAULT false,  -- asked for by redeliverWebhookDelivery
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz
);
-- an event is delivered once per hook; redeliveries are rows of their own
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_id)
    WHERE NOT redelivery;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'PENDING';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, id);
-- finished deliveries are deleted once WEBHOOK_RETENTION has passed
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at)
    WHERE state <> 'PENDING';

CREATE TABLE webhook_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    duration_ms integer,  -- NULL while it runs, or when its process stopped during it
    status_code integer,
    error       text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- Every event a hook matches becomes a delivery in the transaction that records the event:
-- committed with it, or not at all, so no event is missed and none is delivered that did
-- not happen. A trigger, so that every writer of the event log is covered. Only an event
-- that made a delivery wakes the delivery tasks, with a note on the event channel.
CREATE FUNCTION enqueue_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id, kind)
    SELECT w.id, NEW.id, NEW.kind
    FROM projects p JOIN webhooks w ON w.organization_id = p.organization_id
    WHERE p.id = NEW.project_id
      AND (w.project_id IS NULL OR w.project_id = NEW.project_id)
      AND w.active AND NEW.kind = ANY (w.events);
    IF FOUND THEN  -- wake the delivery tasks on commit (one note per transaction)
        PERFORM pg_notify('issuegraph_events', '{"webhooks": true}');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_webhooks AFTER INSERT ON events FOR EACH ROW
    EXECUTE FUNCTION enqueue_webhook_deliveries();
