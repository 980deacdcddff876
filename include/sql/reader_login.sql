-- A login that can only read the zuora schema: a member of zuora_reader (roles.sql grants that
-- role SELECT on the tables and views, never the encrypted originals) and nothing else.
-- A psql script, run by docker-compose's warehouse-init as the warehouse's owner on every `up`
-- (idempotent; a changed password or connection limit is applied):
--
--   psql -v login=zuora_grafana -v password=... -v connection_limit=5 -f reader_login.sql
--
-- zuora_reader is created here if the migrations have not made it yet; they grant it its
-- SELECTs when they run. An existing role with more than that (superuser, CREATEDB, CREATEROLE,
-- REPLICATION, BYPASSRLS, membership of another role, objects or grants of its own) is refused,
-- never turned into a reader. New sessions of the login are read-only by default too.
\set ON_ERROR_STOP on
SELECT set_config('zuora.reader_login', :'login', false),
       set_config('zuora.reader_password', :'password', false),
       set_config('zuora.reader_connection_limit', :'connection_limit', false) \gset ignored_

DO $$
DECLARE
    login text := current_setting('zuora.reader_login');
    secret text := current_setting('zuora.reader_password');
    connection_limit integer := current_setting('zuora.reader_connection_limit')::integer;
    found pg_roles;
BEGIN
    IF login = '' OR secret = '' OR connection_limit < 1 THEN
        RAISE EXCEPTION 'a reader login needs a name, a password and a connection limit of at least 1';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'zuora_reader') THEN
        BEGIN
            CREATE ROLE zuora_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- a migration created it meanwhile
        END;
    END IF;
    SELECT * INTO found FROM pg_roles WHERE rolname = login;
    IF found.oid IS NULL THEN
        EXECUTE format('CREATE ROLE %I', login);
    ELSIF found.rolsuper OR found.rolcreatedb OR found.rolcreaterole OR found.rolreplication
          OR found.rolbypassrls OR login = current_user
          OR EXISTS (SELECT FROM pg_auth_members m
                      WHERE m.member = found.oid AND m.roleid <> 'zuora_reader'::regrole)
          OR EXISTS (SELECT FROM pg_shdepend d
                      WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = found.oid) THEN
        RAISE EXCEPTION 'role % exists and may do more than read: choose another login name', login;
    END IF;
    EXECUTE format('ALTER ROLE %I WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE '
                   'NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %s PASSWORD %L',
                   login, connection_limit, secret);
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', login);
    IF NOT pg_has_role(login, 'zuora_reader', 'MEMBER') THEN
        EXECUTE format('GRANT zuora_reader TO %I', login);
    END IF;
END
$$;

-- the password is not left in this session's settings
SELECT set_config('zuora.reader_password', '', false) \gset ignored_
