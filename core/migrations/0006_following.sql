-- Following issues: the event log holds what a timeline needs, mentions, notifications
-- (with a per-user unread counter), issue subscriptions and reactions.

-- What an event needs beyond its columns, written with it: the previous title and the
-- previous and new assignee (UPDATED), the assignee given at creation (OPENED), the
-- mentioned user (MENTIONED), the project an issue came from (issue_transferred).
ALTER TABLE events ADD COLUMN payload jsonb NOT NULL DEFAULT '{}';

-- Comments written before the timeline existed appear in it, oldest first. They are
-- history, not news: where webhooks already exist (0007 applied first), none is delivered.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'events_webhooks'
               AND tgrelid = 'events'::regclass) THEN
        ALTER TABLE events DISABLE TRIGGER events_webhooks;
    END IF;
END
$$;
INSERT INTO events (kind, project_id, issue_id, actor_id, comment_id, created_at)
SELECT 'COMMENTED', i.project_id, c.issue_id, c.author_id, c.id, c.created_at
FROM comments c JOIN issues i ON i.id = c.issue_id
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.comment_id = c.id AND e.kind = 'COMMENTED')
ORDER BY c.created_at, c.id;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'events_webhooks'
               AND tgrelid = 'events'::regclass) THEN
        ALTER TABLE events ENABLE TRIGGER events_webhooks;
    END IF;
END
$$;

-- Purging the log by age (EVENT_RETENTION) reads it by time.
CREATE INDEX events_created ON events (created_at);

-- A user named with @login in an issue's body (comment_id NULL) or a comment, recorded
-- when written or edited, once per (issue, comment, user), only if the user may read it.
CREATE TABLE mentions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id   bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    comment_id bigint REFERENCES comments (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX mentions_once ON mentions (issue_id, coalesce(comment_id, 0), user_id);
-- "issues that mention user X" (search's mentions: and involves:)
CREATE INDEX mentions_user_issue ON mentions (user_id, issue_id);
CREATE INDEX mentions_comment ON mentions (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX mentions_actor ON mentions (actor_id) WHERE actor_id IS NOT NULL;

-- Following (subscribed) or muting (not subscribed) an issue.
CREATE TABLE issue_subscriptions (
    issue_id   bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subscribed boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issue_id, user_id)
);
CREATE INDEX issue_subscriptions_user ON issue_subscriptions (user_id);

CREATE TABLE notifications (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issue_id   bigint NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    comment_id bigint REFERENCES comments (id) ON DELETE CASCADE,
    actor_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    reason     text NOT NULL CHECK (reason IN ('MENTIONED', 'ASSIGNED', 'AUTHOR', 'SUBSCRIBED')),
    event_id   bigint,  -- the change it tells of (no key: old events are purged)
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- viewer.notifications, newest first, all or unread only
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_user_unread ON notifications (user_id, id) WHERE read_at IS NULL;
CREATE INDEX notifications_issue ON notifications (issue_id);
CREATE INDEX notifications_comment ON notifications (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX notifications_actor ON notifications (actor_id) WHERE actor_id IS NOT NULL;

-- viewer.unreadNotificationCount reads one row. Triggers keep it, in the transaction of
-- every change to notifications (cascading deletes included), one statement per change.
CREATE TABLE notification_counters (
    user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    unread  integer NOT NULL DEFAULT 0 CHECK (unread >= 0)
);

CREATE FUNCTION count_unread_notifications() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO notification_counters AS c (user_id, unread)
        SELECT user_id, count(*) FROM new_rows WHERE read_at IS NULL GROUP BY user_id
        ORDER BY user_id
        ON CONFLICT (user_id) DO UPDATE SET unread = c.unread + excluded.unread;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE notification_counters c SET unread = c.unread - gone.n
        FROM (SELECT user_id, count(*) AS n FROM old_rows WHERE read_at IS NULL
              GROUP BY user_id) gone
        WHERE c.user_id = gone.user_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_counted_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_unread_notifications();
CREATE TRIGGER notifications_counted_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_unread_notifications();
CREATE TRIGGER notifications_counted_delete AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_unread_notifications();

-- A member who leaves an organization keeps no notification of its private projects (and
-- a project made private keeps none of outsiders): what they may not read is not theirs.
CREATE FUNCTION forget_unreadable_notifications() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'memberships' THEN
        DELETE FROM notifications n USING issues i, projects p, users u
        WHERE n.user_id = OLD.user_id AND i.id = n.issue_id AND p.id = i.project_id
          AND p.organization_id = OLD.organization_id AND p.visibility = 'PRIVATE'
          AND u.id = n.user_id AND NOT u.is_site_admin;
    ELSE
        DELETE FROM notifications n USING issues i, users u
        WHERE i.project_id = NEW.id AND n.issue_id = i.id AND u.id = n.user_id
          AND NOT u.is_site_admin
          AND NOT EXISTS (SELECT 1 FROM memberships m
                          WHERE m.user_id = n.user_id AND m.organization_id = NEW.organization_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER membership_ended AFTER DELETE ON memberships FOR EACH ROW
    EXECUTE FUNCTION forget_unreadable_notifications();
CREATE TRIGGER project_made_private AFTER UPDATE OF visibility ON projects FOR EACH ROW
    WHEN (OLD.visibility = 'PUBLIC' AND NEW.visibility = 'PRIVATE')
    EXECUTE FUNCTION forget_unreadable_notifications();

-- GitHub's eight reactions, once per (subject, user, content); a subject is an issue or a
-- comment.
CREATE TABLE reactions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id   bigint REFERENCES issues (id) ON DELETE CASCADE,
    comment_id bigint REFERENCES comments (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    text NOT NULL CHECK (content IN (
        'THUMBS_UP', 'THUMBS_DOWN', 'LAUGH', 'HOORAY', 'CONFUSED', 'HEART', 'ROCKET', 'EYES')),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((issue_id IS NULL) <> (comment_id IS NULL))
);
CREATE UNIQUE INDEX reactions_issue_once ON reactions (issue_id, content, user_id)
    WHERE issue_id IS NOT NULL;
CREATE UNIQUE INDEX reactions_comment_once ON reactions (comment_id, content, user_id)
    WHERE comment_id IS NOT NULL;
CREATE INDEX reactions_user ON reactions (user_id);
