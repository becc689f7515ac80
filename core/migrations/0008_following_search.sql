-- Following meets search and webhooks.

-- An `issue_transferred` event belongs to the project the issue joined and names the one it
-- left in its payload: replaying the log of the project it left (resumed subscriptions)
-- finds it here.
CREATE INDEX IF NOT EXISTS events_transferred_from
    ON events (((payload->>'from_project_id')::bigint), id)
    WHERE kind = 'issue_transferred';

-- A hook on the project an issue left hears of its transfer too, as that project's
-- subscribers do (a hook on the organization, once).
CREATE OR REPLACE FUNCTION enqueue_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id, kind)
    SELECT w.id, NEW.id, NEW.kind
    FROM projects p JOIN webhooks w ON w.organization_id = p.organization_id
    WHERE p.id = NEW.project_id
      AND (w.project_id IS NULL OR w.project_id = NEW.project_id
           OR (NEW.kind = 'issue_transferred'
               AND w.project_id = (NEW.payload->>'from_project_id')::bigint))
      AND w.active AND NEW.kind = ANY (w.events);
    IF FOUND THEN  -- wake the delivery tasks on commit (one note per transaction)
        PERFORM pg_notify('issuegraph_events', '{"webhooks": true}');
    END IF;
    RETURN NULL;
END
$$;
