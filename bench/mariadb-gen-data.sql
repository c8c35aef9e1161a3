-- Benchmark data for bench/mariadb-formats.sh: one batch of "realistic" rows.
--
-- Run with the mariadb client in the target database, after setting @rows, the
-- number of bench_events rows in this batch (bench_documents gets rows/2,
-- bench_api_keys rows/4):
--
--   { echo 'SET @rows = 50000;'; cat bench/mariadb-gen-data.sql; } | mariadb app
--
-- The same mix as bench/gen-data.sql (PostgreSQL), so that a plain dump of it
-- compresses about 2.5-3:1 with `zstd -1`, like a typical application
-- database: random hex (hashes, ids, tokens) barely compresses, free text and
-- small JSON documents compress well. No padding, no repeated strings.
--
-- Rows are made server-side by INSERT ... SELECT over the SEQUENCE engine
-- (seq_1_to_N, limited by WHERE seq <= @rows, which it reads as a range).
-- Free text is CONCAT_WS(' ', ELT(random, word, ...), ...) built from the
-- bench_words table as text and run with EXECUTE IMMEDIATE: measured here, a
-- stored function looping over words, or a GROUP_CONCAT over a join with a
-- sequence, is 30-50 times slower (~40 s per 100k documents instead of ~1 s).

CREATE TABLE IF NOT EXISTS bench_words (
    id          INT PRIMARY KEY,
    word        VARCHAR(32) NOT NULL
);

CREATE TABLE IF NOT EXISTS bench_events (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at  DATETIME(6) NOT NULL,
    trace_id    CHAR(32) NOT NULL,          -- 32 hex digits
    span_id     CHAR(16) NOT NULL,          -- 16 hex digits
    payload     JSON NOT NULL,              -- small JSON document (~250 bytes)
    KEY bench_events_created_at (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS bench_documents (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    author      VARCHAR(100) NOT NULL,
    title       VARCHAR(255) NOT NULL,
    body        TEXT NOT NULL,              -- free text, 20-90 words
    checksum    CHAR(64) NOT NULL,          -- sha256, 64 hex digits
    updated_at  DATETIME NOT NULL,
    KEY bench_documents_author (author)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS bench_api_keys (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    label       VARCHAR(100) NOT NULL,
    key_hash    CHAR(64) NOT NULL,          -- sha256, 64 hex digits
    salt        CHAR(32) NOT NULL,          -- 32 hex digits
    created_at  DATETIME NOT NULL,
    expires_at  DATETIME NULL,
    UNIQUE KEY bench_api_keys_key_hash (key_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A small vocabulary, drawn uniformly, so the text is less redundant than real
-- prose (which compresses even better).
SET @list = CONCAT_WS(' ',
    'the of and to in is that for it as was with be by on not he this are or',
    'his from at which but have an they you were her she there been one all',
    'would their we him when who will more if out so up said what its about',
    'than into them can only other new some could time these two may first',
    'then do any like my now over such our man me even most made after also',
    'did many before must through back years where much your way well down',
    'should because each just those people how too little state good very',
    'make world still own see men work long get here between both life being',
    'under never day same another know while last might us great old year',
    'off come since against go came right used take three database server',
    'backup restore query index table replica cluster tenant instance plan',
    'service binding credential snapshot archive storage bucket region',
    'latency throughput timeout retry failure success customer invoice order',
    'payment account user session request response error warning metric');
INSERT IGNORE INTO bench_words (id, word)
SELECT seq, SUBSTRING_INDEX(SUBSTRING_INDEX(@list, ' ', seq), ' ', -1)
FROM seq_1_to_1000
WHERE seq <= 1 + LENGTH(@list) - LENGTH(REPLACE(@list, ' ', ''));

-- @word: an SQL expression giving one random word; @words8 / @words90: N
-- random words separated by spaces (cut to fewer with SUBSTRING_INDEX).
SELECT CONCAT('ELT(1 + FLOOR(RAND() * ', COUNT(*), '), ',
              GROUP_CONCAT(QUOTE(word) ORDER BY id SEPARATOR ', '), ')')
INTO @word FROM bench_words;
SET @words8 = CONCAT('CONCAT_WS('' '', ', REPEAT(CONCAT(@word, ', '), 7), @word, ')');
SET @words90 = CONCAT('CONCAT_WS('' '', ', REPEAT(CONCAT(@word, ', '), 89), @word, ')');

-- The statements below are double-quoted templates (sql_mode without
-- ANSI_QUOTES, the default); {words8} and {words90} are replaced by the
-- expressions above.

-- Events: timestamps, hex ids and a JSON document of ~250 bytes.
EXECUTE IMMEDIATE REPLACE("
INSERT INTO bench_events (created_at, trace_id, span_id, payload)
SELECT NOW(6) - INTERVAL FLOOR(RAND() * 31536000000000) MICROSECOND,
       MD5(RAND()),
       LEFT(MD5(RAND()), 16),
       JSON_OBJECT(
           'user_id',    FLOOR(RAND() * 100000),
           'action',     ELT(1 + FLOOR(RAND() * 8), 'login', 'logout', 'view', 'edit',
                             'delete', 'share', 'export', 'comment'),
           'ok',         RAND() > 0.05,
           'latency_ms', ROUND(RAND() * 900, 2),
           'client',     JSON_OBJECT(
                             'ip', CONCAT_WS('.', 10, FLOOR(RAND() * 256),
                                             FLOOR(RAND() * 256), FLOOR(RAND() * 256)),
                             'agent', ELT(1 + FLOOR(RAND() * 5),
                                          'Mozilla/5.0 (X11; Linux x86_64)',
                                          'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)',
                                          'curl/8.5.0', 'python-requests/2.31.0',
                                          'okhttp/4.12.0')),
           'request_id', MD5(RAND()),
           'note',       SUBSTRING_INDEX({words8}, ' ', 3 + s.seq % 6))
FROM seq_1_to_1000000000 AS s
WHERE s.seq <= @rows", '{words8}', @words8);

-- Documents: free text with a title, author and a sha256 checksum.
EXECUTE IMMEDIATE REPLACE(REPLACE("
INSERT INTO bench_documents (author, title, body, checksum, updated_at)
SELECT CONCAT('user', FLOOR(RAND() * 5000), '@example.org'),
       SUBSTRING_INDEX({words8}, ' ', 3 + s.seq % 5),
       SUBSTRING_INDEX({words90}, ' ', 20 + s.seq % 71),
       SHA2(RAND(), 256),
       NOW() - INTERVAL FLOOR(RAND() * 94608000) SECOND
FROM seq_1_to_1000000000 AS s
WHERE s.seq <= @rows DIV 2", '{words8}', @words8), '{words90}', @words90);

-- API keys: almost pure hex, the least compressible table.
EXECUTE IMMEDIATE REPLACE("
INSERT INTO bench_api_keys (label, key_hash, salt, created_at, expires_at)
SELECT REPLACE(SUBSTRING_INDEX({words8}, ' ', 2 + s.seq % 2), ' ', '-'),
       SHA2(CONCAT(UUID(), RAND()), 256),     -- unique: RAND() has ~2^30 values
       MD5(RAND()),
       NOW() - INTERVAL FLOOR(RAND() * 63072000) SECOND,
       IF(RAND() < 0.7, NOW() + INTERVAL FLOOR(RAND() * 31536000) SECOND, NULL)
FROM seq_1_to_1000000000 AS s
WHERE s.seq <= @rows DIV 4", '{words8}', @words8);
