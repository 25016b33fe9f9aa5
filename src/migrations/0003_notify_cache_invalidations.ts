import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

// PostgreSQL only: every change to cache_invalidations is announced on the channel of the same name at commit, so
// each process keeps its copy of the table current without asking on every read (Database/PgInvalidations.ts). A trigger
// rather than a NOTIFY beside each statement: a row an operator deletes by hand is announced too. SQLite needs
// nothing: each process watches the file's data_version instead (Database/SqliteInvalidations.ts).
export default Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.onDialectOrElse({
    pg: () =>
      Effect.zipRight(
        sql`
          CREATE FUNCTION notify_cache_invalidation() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF TG_OP = 'DELETE' THEN
              PERFORM pg_notify('cache_invalidations',
                json_build_object('op', 'clear', 'key', OLD.key, 'generation', OLD.generation)::text);
            ELSE
              PERFORM pg_notify('cache_invalidations',
                json_build_object('op', 'record', 'key', NEW.key, 'generation', NEW.generation)::text);
            END IF;
            RETURN NULL;
          END
          $$
        `,
        sql`
          CREATE TRIGGER cache_invalidations_notify AFTER INSERT OR UPDATE OR DELETE ON cache_invalidations
          FOR EACH ROW EXECUTE FUNCTION notify_cache_invalidation()
        `
      ),
    orElse: () => Effect.void
  })
)
