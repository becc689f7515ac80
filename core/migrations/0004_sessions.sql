-- Sessions that end when they end, idempotency keys that know what they stand for, and
-- sign-in throttling by (account, client address).

-- A session: one sign-in, kept alive by refreshing its tokens. Access tokens name it (the
-- `sid` claim); the statement that loads the signed-in viewer checks that it is live, so
-- that ending it (sign-out, revocation, a reused refresh token, a password change) ends
-- its access tokens at once.
CREATE TABLE sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,  -- its refresh token's expiry: refreshing extends it
    client       text NOT NULL DEFAULT '',  -- the User-Agent it signed in with
    address      text,  -- the client address it signed in from
    ended_at     timestamptz,
    end_reason   text CHECK (
        end_reason IN ('SIGNED_OUT', 'REVOKED', 'REFRESH_TOKEN_REUSED', 'PASSWORD_CHANGED')
    ),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
-- viewer.sessions: a user's live sessions, newest first
CREATE INDEX sessions_user_live ON sessions (user_id, id) WHERE ended_at IS NULL;

-- Each refresh-token family so far becomes a session.
ALTER TABLE sessions ADD COLUMN family uuid;
INSERT INTO sessions (user_id, created_at, last_used_at, expires_at, family, ended_at, end_reason)
SELECT user_id, min(created_at), max(created_at), max(expires_at), family, min(revoked_at),
       CASE WHEN min(revoked_at) IS NOT NULL THEN 'REVOKED' END
FROM refresh_tokens GROUP BY family, user_id;
ALTER TABLE refresh_tokens ADD COLUMN session_id bigint REFERENCES sessions (id) ON DELETE CASCADE;
UPDATE refresh_tokens r SET session_id = s.id FROM sessions s WHERE s.family = r.family;
ALTER TABLE refresh_tokens ALTER COLUMN session_id SET NOT NULL;
ALTER TABLE sessions DROP COLUMN family;
-- a refresh token is spent by its `used_at`, revoked by its session's end
ALTER TABLE refresh_tokens DROP COLUMN family, DROP COLUMN revoked_at;
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Ending a session is announced on the live channel (the one the event outbox uses, see
-- loaders/writes/issues.py), delivered on commit to every server process: each closes the
-- WebSockets of that session. A trigger, so that every way a session ends announces it,
-- an UPDATE by hand or the deletion of its user included.
CREATE FUNCTION announce_session_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('issuegraph_events', json_build_object('session', OLD.id)::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER session_ended AFTER UPDATE OF ended_at ON sessions FOR EACH ROW
    WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION announce_session_end();
CREATE TRIGGER session_deleted AFTER DELETE ON sessions FOR EACH ROW
    WHEN (OLD.ended_at IS NULL)
    EXECUTE FUNCTION announce_session_end();

-- An idempotency key stands for one input: a fingerprint (SHA-256) of the input it came
-- with. Keys older than a day are free again; creates delete a few expired ones as they go.
ALTER TABLE mutation_receipts ADD COLUMN fingerprint bytea NOT NULL DEFAULT '\x';
ALTER TABLE mutation_receipts ALTER COLUMN fingerprint DROP DEFAULT;
CREATE INDEX mutation_receipts_created ON mutation_receipts (created_at);

-- Failed sign-ins are counted per (account, client address) and per address; sign-ins
-- delete a few expired ones as they go.
CREATE INDEX login_failures_time ON login_failures (failed_at);
