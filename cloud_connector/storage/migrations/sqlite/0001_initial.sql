-- Cariflex cloud connector, schema 1. Timestamps are fixed-width UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ),
-- country codes and party ids upper case, JSON columns hold objects we built or already validated.

CREATE TABLE parties (
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    name TEXT NOT NULL,
    website TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (country_code, party_id)
);

CREATE TABLE admin_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One row per installation; the site id is the OCPI Location.id.
CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    publish INTEGER NOT NULL DEFAULT 1,
    last_seq INTEGER NOT NULL DEFAULT 0,
    info TEXT,                 -- "site" part of the last inventory (JSON)
    last_updated TEXT,         -- Location.last_updated: the site or one of its EVSEs/connectors changed
    created_at TEXT NOT NULL,
    last_event_at TEXT,
    FOREIGN KEY (country_code, party_id) REFERENCES parties (country_code, party_id)
);

CREATE TABLE uplink_events (
    site_id TEXT NOT NULL REFERENCES sites (id),
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (site_id, seq),
    UNIQUE (site_id, event_id)
);

CREATE TABLE chargers (
    site_id TEXT NOT NULL REFERENCES sites (id),
    charger_id TEXT NOT NULL,
    vendor TEXT,
    model TEXT,
    ocpp_version TEXT,
    status TEXT,               -- charger-wide status (OCPP connector 0, or "Offline"); NULL when none
    present INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (site_id, charger_id)
);

-- EVSEs are never deleted (OCPI): one that leaves the inventory gets status REMOVED.
CREATE TABLE evses (
    uid TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites (id),
    charger_id TEXT NOT NULL,
    evse_id INTEGER NOT NULL,
    evse_code TEXT NOT NULL,   -- eMI3 EVSE ID
    status TEXT NOT NULL,      -- OCPI status as last published
    removed INTEGER NOT NULL DEFAULT 0,
    last_updated TEXT NOT NULL,
    UNIQUE (site_id, charger_id, evse_id)
);
CREATE INDEX evses_site ON evses (site_id);

CREATE TABLE connectors (
    evse_uid TEXT NOT NULL REFERENCES evses (uid),
    connector_id TEXT NOT NULL,
    standard TEXT NOT NULL,
    format TEXT NOT NULL,
    power_type TEXT NOT NULL,
    max_voltage INTEGER NOT NULL,
    max_amperage INTEGER NOT NULL,
    max_electric_power INTEGER,
    ocpp_status TEXT,
    last_updated TEXT NOT NULL,
    PRIMARY KEY (evse_uid, connector_id)
);

CREATE TABLE tariffs (
    id TEXT PRIMARY KEY,
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    body TEXT NOT NULL,        -- the Tariff object without country_code/party_id/id/last_updated (JSON)
    deleted INTEGER NOT NULL DEFAULT 0,
    last_updated TEXT NOT NULL
);

-- A tariff for a whole site (evse_uid = '') or one EVSE (which wins over the site's).
CREATE TABLE tariff_assignments (
    tariff_id TEXT NOT NULL REFERENCES tariffs (id),
    site_id TEXT NOT NULL REFERENCES sites (id),
    evse_uid TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tariff_id, site_id, evse_uid)
);

-- OCPI peers (platforms). A peer is PENDING while only our token A exists, REGISTERED after the
-- credentials exchange, UNREGISTERED after a DELETE.
CREATE TABLE peers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    versions_url TEXT,
    version TEXT,
    endpoints TEXT NOT NULL DEFAULT '[]',
    roles TEXT NOT NULL DEFAULT '[]',
    token_out TEXT,            -- the token we send to this peer (its token B or C); theirs, so kept as is
    plain_auth INTEGER NOT NULL DEFAULT 0,   -- the peer wants the token without base64
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_exchange_at TEXT,
    last_exchange TEXT,        -- "<METHOD> <module> -> <HTTP status>/<OCPI status>"
    last_error TEXT
);

-- Tokens we issued to peers: kind A (registration only) or C (everything).
CREATE TABLE peer_tokens (
    token_hash TEXT PRIMARY KEY,
    peer_id INTEGER NOT NULL REFERENCES peers (id),
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Tokens pushed by eMSPs (or learnt from a real-time authorization).
CREATE TABLE tokens (
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    uid_key TEXT NOT NULL,     -- upper-case uid (CiString)
    type TEXT NOT NULL,
    peer_id INTEGER NOT NULL REFERENCES peers (id),
    body TEXT NOT NULL,        -- the Token object (JSON), unknown fields dropped
    valid INTEGER NOT NULL,
    whitelist TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    PRIMARY KEY (country_code, party_id, uid_key, type)
);
CREATE INDEX tokens_uid ON tokens (uid_key);

-- What we learnt before a session starts: a command's token, an authorization reference.
CREATE TABLE session_hints (
    id INTEGER PRIMARY KEY,
    site_id TEXT NOT NULL,
    uid_key TEXT NOT NULL,
    peer_id INTEGER,
    token TEXT,                -- Token object (JSON)
    authorization_reference TEXT,
    command INTEGER NOT NULL DEFAULT 0,  -- from a START_SESSION / RESERVE_NOW
    created_at TEXT NOT NULL
);
CREATE INDEX session_hints_key ON session_hints (site_id, uid_key);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,       -- OCPI Session.id
    site_id TEXT NOT NULL REFERENCES sites (id),
    site_session_id TEXT NOT NULL,
    charger_id TEXT NOT NULL,
    evse_uid TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    id_tag TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    authorization_reference TEXT,
    peer_id INTEGER,           -- the eMSP owning the token; NULL for a local badge (never shared)
    cdr_token TEXT,            -- CdrToken (JSON)
    currency TEXT NOT NULL,
    start_at TEXT NOT NULL,
    end_at TEXT,
    meter_start_wh REAL NOT NULL,
    energy_wh REAL NOT NULL DEFAULT 0,
    power_w REAL,
    current_a REAL,
    status TEXT NOT NULL,
    cdr_location TEXT NOT NULL, -- CdrLocation as at the start (JSON)
    tariffs TEXT NOT NULL,      -- Tariff objects as at the start (JSON list)
    meter_curve TEXT NOT NULL DEFAULT '[]',  -- [[at, wh_since_start], ...]
    limit_w REAL,              -- last charging profile limit sent to the site
    profile_peer_id INTEGER,   -- who set it
    last_updated TEXT NOT NULL,
    UNIQUE (site_id, site_session_id)
);
CREATE INDEX sessions_updated ON sessions (last_updated);

CREATE TABLE cdrs (
    id TEXT PRIMARY KEY,
    session_id TEXT,
    peer_id INTEGER,
    body TEXT NOT NULL,        -- the CDR object (JSON), never changed once written
    credit INTEGER NOT NULL DEFAULT 0,
    credited_by TEXT,          -- id of the credit CDR that cancels this one
    emsp_url TEXT,             -- Location header of the eMSP's answer to our POST
    delivered_at TEXT,         -- when the owning eMSP accepted it
    last_updated TEXT NOT NULL
);
CREATE INDEX cdrs_updated ON cdrs (last_updated);

-- An object a peer may not have in its latest state: pushed again (full object) until it succeeds.
CREATE TABLE push_state (
    peer_id INTEGER NOT NULL REFERENCES peers (id),
    module TEXT NOT NULL,
    object_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    PRIMARY KEY (peer_id, module, object_id)
);

CREATE TABLE reservations (
    id INTEGER PRIMARY KEY,    -- the reservation id the charger sees (unique across eMSPs)
    peer_id INTEGER NOT NULL REFERENCES peers (id),
    reservation_id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    evse_uid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (peer_id, reservation_id, location_id)
);

CREATE TABLE client_info (
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    peer_id INTEGER NOT NULL REFERENCES peers (id),
    last_updated TEXT NOT NULL,
    PRIMARY KEY (country_code, party_id)
);
