-- walker's SQL surface as the catalogs describe it, in a form that is the same on
-- every supported major (psql's \dv and \df+ change their columns between majors):
-- every relation and function of the schema with what it grants to roles other than
-- its owner (the owner's own privileges grow with the major: 17 adds MAINTAIN), the
-- columns of every view, and the roles walker creates. Run by the sql_surface test,
-- whose expected output is tests/harness/expected/sql_surface.out.

\echo == relations: name | kind | grants to others than the owner
SELECT c.relname, c.relkind,
       CASE WHEN c.relacl IS NULL THEN '(default)' ELSE coalesce((
           SELECT string_agg(pg_catalog.format('%s:%s', x.grantee::regrole, x.privilege_type), ' '
                             ORDER BY x.grantee::regrole::text, x.privilege_type)
           FROM pg_catalog.aclexplode(c.relacl) x WHERE x.grantee <> c.relowner), '') END
FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'walker'::regnamespace AND c.relkind NOT IN ('i', 'S')
ORDER BY c.relname;

\echo == view columns: view | column | type
SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = 'walker'::regnamespace AND c.relkind = 'v' AND a.attnum > 0
ORDER BY c.relname, a.attnum;

\echo == functions: signature | result | security | settings | volatility | grants to others than the owner
SELECT p.oid::regprocedure, pg_catalog.pg_get_function_result(p.oid),
       CASE WHEN p.prosecdef THEN 'definer' ELSE 'invoker' END,
       coalesce(array_to_string(p.proconfig, ' '), ''), p.provolatile,
       CASE WHEN p.proacl IS NULL THEN '(default)' ELSE coalesce((
           SELECT string_agg(pg_catalog.format('%s:%s', x.grantee::regrole, x.privilege_type), ' '
                             ORDER BY x.grantee::regrole::text, x.privilege_type)
           FROM pg_catalog.aclexplode(p.proacl) x WHERE x.grantee <> p.proowner), '') END
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'walker'::regnamespace
ORDER BY p.oid::regprocedure::text;

\echo == roles: name | login | member of
SELECT r.rolname, r.rolcanlogin,
       coalesce((SELECT string_agg(g.rolname, ' ' ORDER BY g.rolname)
                 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                 WHERE m.member = r.oid), '')
FROM pg_catalog.pg_roles r
WHERE r.rolname LIKE 'walker\_%'
ORDER BY r.rolname;

\echo == objects of the extension: kind | count
SELECT d.classid::regclass, count(*)
FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
-- (17 on also records the row types of the views and the table: left out)
WHERE e.extname = 'walker' AND d.deptype = 'e' AND d.classid <> 'pg_type'::regclass
GROUP BY 1 ORDER BY 1::text;
