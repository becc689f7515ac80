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

-- An issue moved to a private project keeps no notification of those who may not read it
-- there (as a project made private keeps none, migration 0006): the unread count agrees
-- with the list.
CREATE OR REPLACE FUNCTION forget_notifications_of_moved_issue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM notifications n USING projects p, users u
    WHERE n.issue_id = NEW.id AND p.id = NEW.project_id AND p.visibility = 'PRIVATE'
      AND u.id = n.user_id AND NOT u.is_site_admin
      AND NOT EXISTS (SELECT 1 FROM memberships m
                      WHERE m.user_id = n.user_id AND m.organization_id = p.organization_id);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS issue_moved ON issues;
CREATE TRIGGER issue_moved AFTER UPDATE OF project_id ON issues FOR EACH ROW
    WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id)
    EXECUTE FUNCTION forget_notifications_of_moved_issue();
