-- +goose Up
-- People and access (issue 18, docs/controlplane.md#people-and-access).
-- Users are global; email_key is the lower-cased email (unique), email keeps
-- the spelling the user gave. password_hash is an argon2id PHC string, or ''
-- for a user who cannot log in with a password.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL
);

-- A user's role in an org: owner, admin, member or viewer.
CREATE TABLE org_members (
    org        TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, user_id)
);
CREATE INDEX org_members_user ON org_members (user_id);

-- Teams inside an org, with a concurrent-sandbox quota (0 = only the org's).
CREATE TABLE teams (
    org           TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    max_sandboxes BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE team_members (
    org        TEXT NOT NULL,
    team       TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org, team, user_id),
    FOREIGN KEY (org, team) REFERENCES teams (org, name) ON DELETE CASCADE
);

-- Invitations to an org; only the token's SHA-256 is kept.
CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    org         TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    email_key   TEXT NOT NULL,
    role        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT NOT NULL DEFAULT 0,
    accepted_by TEXT NOT NULL DEFAULT '',
    revoked_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX invitations_org ON invitations (org, created_at, id);

-- Browser sessions; id_hash is the SHA-256 of the cookie's value.
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Service accounts own API keys that belong to no person; role is their
-- role in the org.
CREATE TABLE service_accounts (
    org         TEXT NOT NULL REFERENCES orgs (name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);

-- An org's API key is owned by a user (owner_user), by a service account
-- (service_account) or, for keys made before this migration and by admin
-- keys, by nobody: such an org key acts as an org admin.
ALTER TABLE api_keys ADD COLUMN owner_user TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN service_account TEXT NOT NULL DEFAULT '';
CREATE INDEX api_keys_owner ON api_keys (org, owner_user, created_at, id);
CREATE INDEX api_keys_service_account ON api_keys (org, service_account, created_at, id);

-- The audit trail: who (actor) did what (action) to which object, when.
CREATE TABLE audit_events (
    org         TEXT NOT NULL,
    id          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_kind TEXT NOT NULL DEFAULT '',
    object_name TEXT NOT NULL DEFAULT '',
    details     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE INDEX audit_events_by_time ON audit_events (org, created_at, id);

-- +goose Down
DROP TABLE audit_events;
DROP INDEX api_keys_service_account;
DROP INDEX api_keys_owner;
ALTER TABLE api_keys DROP COLUMN service_account;
ALTER TABLE api_keys DROP COLUMN owner_user;
DROP TABLE service_accounts;
DROP TABLE sessions;
DROP TABLE invitations;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE org_members;
DROP TABLE users;
