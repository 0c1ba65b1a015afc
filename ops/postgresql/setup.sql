-- The bus's database and its two roles, least privilege (run once, as a superuser):
--
--   sudo -u postgres psql -v ON_ERROR_STOP=1 \
--        -v owner_password="$OWNER_PW" -v app_password="$APP_PW" -f ops/postgresql/setup.sql
--
-- lgsp_owner owns the database and its tables: `lgsp db upgrade` runs as it, once per
-- release. lgsp_app is what serve and worker connect as: it reads and writes rows
-- (SELECT, INSERT, UPDATE, DELETE, sequences) and can neither create, alter nor drop a
-- table. Names can be changed with -v dbname=... -v owner=... -v app=...

\if :{?dbname}
\else
  \set dbname lgsp
\endif
\if :{?owner}
\else
  \set owner lgsp_owner
\endif
\if :{?app}
\else
  \set app lgsp_app
\endif

CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE :"app" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE :"dbname" OWNER :"owner" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO :"app";

\connect :"dbname"
-- PostgreSQL 15 already keeps CREATE on public from PUBLIC; older ones do not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"owner";
GRANT USAGE ON SCHEMA public TO :"app";
-- Every table and sequence the owner creates (every migration) is usable by the app role.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
-- Tables that already exist (a database restored or made before this script).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
