-- Benchmark data for bench/backup-restore.sh: one batch of "realistic" rows.
--
-- Run with psql; :rows is the number of bench_events rows in this batch
-- (bench_documents gets rows/2, bench_api_keys rows/4):
--
--   psql "$URI" -v ON_ERROR_STOP=1 -v rows=50000 -f bench/gen-data.sql
--
-- The mix is chosen so that a plain `pg_dump -Fc -Z0` of it compresses about
-- 2.5-3:1 with `zstd -1`, like a typical application database: random hex
-- (hashes, ids, tokens) barely compresses, free text and small JSON documents
-- compress well. pgbench tables are mostly zeros and blank padding and
-- compress ~50:1, which would flatter any compressing backup.
--
-- Text values stay well below the TOAST threshold (~2 kB), so the rows are
-- stored uncompressed and pg_database_size tracks the dump size.

CREATE TABLE IF NOT EXISTS bench_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    trace_id    text NOT NULL,          -- 32 hex digits
    span_id     text NOT NULL,          -- 16 hex digits
    payload     jsonb NOT NULL          -- small JSON document
);

CREATE TABLE IF NOT EXISTS bench_documents (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author      text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL,          -- free text, 20-90 words
    checksum    text NOT NULL,          -- sha256, 64 hex digits
    updated_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS bench_api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label       text NOT NULL,
    key_hash    text NOT NULL,          -- sha256, 64 hex digits
    salt        text NOT NULL,          -- 32 hex digits
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz
);

-- Free text: n words drawn uniformly from a small vocabulary, so the text is
-- less redundant than real prose (which compresses even better).
CREATE OR REPLACE FUNCTION pg_temp.bench_words(n int, sep text DEFAULT ' ')
RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT string_agg(v.w[1 + (random() * (cardinality(v.w) - 1))::int], sep)
    FROM generate_series(1, n),
         (SELECT string_to_array(
             'the of and to in is that for it as was with be by on not he this are or '
             'his from at which but have an they you were her she there been one all '
             'would their we him when who will more if out so up said what its about '
             'than into them can only other new some could time these two may first '
             'then do any like my now over such our man me even most made after also '
             'did many before must through back years where much your way well down '
             'should because each just those people how too little state good very '
             'make world still own see men work long get here between both life being '
             'under never day same another know while last might us great old year '
             'off come since against go came right used take three database server '
             'backup restore query index table replica cluster tenant instance plan '
             'service binding credential snapshot archive storage bucket region '
             'latency throughput timeout retry failure success customer invoice order '
             'payment account user session request response error warning metric',
             ' ') AS w) AS v
$$;

-- Events: timestamps, hex ids and a JSON document of ~200 bytes.
INSERT INTO bench_events (created_at, trace_id, span_id, payload)
SELECT now() - random() * interval '365 days',
       md5(random()::text),
       substr(md5(random()::text), 1, 16),
       jsonb_build_object(
           'user_id',    (random() * 100000)::int,
           'action',     (ARRAY['login', 'logout', 'view', 'edit', 'delete',
                                'share', 'export', 'comment'])[1 + (random() * 7)::int],
           'ok',         random() > 0.05,
           'latency_ms', round((random() * 900)::numeric, 2),
           'client',     jsonb_build_object(
                             'ip', format('10.%s.%s.%s', (random() * 255)::int,
                                          (random() * 255)::int, (random() * 255)::int),
                             'agent', (ARRAY['Mozilla/5.0 (X11; Linux x86_64)',
                                             'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)',
                                             'curl/8.5.0', 'python-requests/2.31.0',
                                             'okhttp/4.12.0'])[1 + (random() * 4)::int]),
           'request_id', md5(random()::text),
           'note',       pg_temp.bench_words(3 + g % 6)
       )
FROM generate_series(1, :rows) AS g;

-- Documents: free text with a title, author and a sha256 checksum.
INSERT INTO bench_documents (author, title, body, checksum, updated_at)
SELECT 'user' || (random() * 5000)::int || '@example.org',
       initcap(pg_temp.bench_words(3 + g % 5)),
       pg_temp.bench_words(20 + g % 71),
       encode(sha256(random()::text::bytea), 'hex'),
       now() - random() * interval '3 years'
FROM generate_series(1, :rows / 2) AS g;

-- API keys: almost pure hex, the least compressible table.
INSERT INTO bench_api_keys (label, key_hash, salt, created_at, expires_at)
SELECT pg_temp.bench_words(2 + g % 2, '-'),
       encode(sha256(random()::text::bytea), 'hex'),
       md5(random()::text),
       now() - random() * interval '2 years',
       CASE WHEN random() < 0.7 THEN now() + random() * interval '1 year' END
FROM generate_series(1, :rows / 4) AS g;
