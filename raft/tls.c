/* tls.c - TLS 1.3 sessions over memory BIOs (tls.h).
 *
 * Configuration: one SSL_CTX serves both ends of every connection (a
 * session is put in connect or accept state). TLS 1.3 only, no session
 * tickets or cache: a reconnect is a full handshake, which keeps the
 * proof of membership fresh.
 *
 * Shared-secret mode: the key is HKDF-SHA256(secret file) and is offered
 * as an external PSK under one fixed identity; the server has no
 * certificate, so only a client that proves the PSK (its binder) can
 * finish a handshake, and both ends check after the handshake that the
 * PSK was used (SSL_session_reused): a client must not accept a server
 * that answered with some certificate instead.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define PSK_IDENTITY "quorumfs-peer-v1"
#define PSK_KEY_BYTES 32 /* SHA-256 sized, for TLS_AES_128_GCM_SHA256 */
#define HKDF_SALT "quorumfs peer secret"
#define HKDF_INFO "tls13 external psk v1"

struct tls_config {
    SSL_CTX* ctx;
    bool psk;
    uint8_t key[PSK_KEY_BYTES];
};

struct tls {
    struct tls_config* cfg;
    SSL* ssl;
    BIO* out; /* what OpenSSL wrote for the peer (owned by ssl) */
    BIO* in;  /* what the peer sent (owned by ssl) */
    char err[TLS_ERROR_MAX];
};

/* The reason OpenSSL queued last, or `fallback`. */
static void ssl_reason(char* out, size_t cap, const char* fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(out, cap, "%s", fallback);
        return;
    }
    const char* r = ERR_reason_error_string(e);
    if (r != NULL) {
        snprintf(out, cap, "%s", r);
    } else {
        ERR_error_string_n(e, out, cap);
    }
    ERR_clear_error();
}

/* ---- shared secret ---- */

/* Read the secret file: a regular file, not open to group or others,
 * TLS_SECRET_MIN..TLS_SECRET_MAX bytes once trailing white space (a final
 * newline) is trimmed. */
static int read_secret(const char* path,
                       uint8_t* buf,
                       size_t* len,
                       char* err,
                       size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "--peer-secret-file %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    struct stat st;
    int rv = -EINVAL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, cap, "--peer-secret-file %s: not a regular file", path);
    } else if ((st.st_mode & 077) != 0) {
        snprintf(err, cap,
                 "--peer-secret-file %s: group or others may access it "
                 "(mode %04o); `chmod 600 %s` first",
                 path, (unsigned)(st.st_mode & 07777), path);
    } else {
        ssize_t n = read(fd, buf, TLS_SECRET_MAX + 1);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                         buf[n - 1] == ' ' || buf[n - 1] == '\t')) {
            n--;
        }
        if (n < 0) {
            snprintf(err, cap, "--peer-secret-file %s: %s", path,
                     strerror(errno));
        } else if (n > TLS_SECRET_MAX) {
            snprintf(err, cap,
                     "--peer-secret-file %s: longer than %d bytes (make one "
                     "with `head -c 32 /dev/urandom | base64`)",
                     path, TLS_SECRET_MAX);
        } else if (n < TLS_SECRET_MIN) {
            snprintf(err, cap,
                     "--peer-secret-file %s: %zd bytes, at least %d needed "
                     "(make one with `head -c 32 /dev/urandom | base64`)",
                     path, n, TLS_SECRET_MIN);
        } else {
            *len = (size_t)n;
            rv = 0;
        }
    }
    close(fd);
    return rv;
}

static int derive_key(const uint8_t* secret, size_t len, uint8_t* key)
{
    EVP_PKEY_CTX* k = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t out = PSK_KEY_BYTES;
    int ok = k != NULL && EVP_PKEY_derive_init(k) > 0 &&
             EVP_PKEY_CTX_set_hkdf_md(k, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_salt(k, (const unsigned char*)HKDF_SALT,
                                         (int)strlen(HKDF_SALT)) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_key(k, secret, (int)len) > 0 &&
             EVP_PKEY_CTX_add1_hkdf_info(k, (const unsigned char*)HKDF_INFO,
                                         (int)strlen(HKDF_INFO)) > 0 &&
             EVP_PKEY_derive(k, key, &out) > 0 && out == PSK_KEY_BYTES;
    EVP_PKEY_CTX_free(k);
    return ok ? 0 : -ENOMEM;
}

static SSL_SESSION* psk_session(SSL* ssl)
{
    static const unsigned char aes128gcm_sha256[] = {0x13, 0x01};
    const struct tls_config* c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, aes128gcm_sha256);
    SSL_SESSION* s = cipher != NULL ? SSL_SESSION_new() : NULL;
    if (s == NULL || !SSL_SESSION_set1_master_key(s, c->key, sizeof(c->key)) ||
        !SSL_SESSION_set_cipher(s, cipher) ||
        !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return NULL;
    }
    return s;
}

/* Client: offer the PSK (asked once without a digest, and again with the
 * chosen suite's: offer it only if that is SHA-256). */
static int psk_use_cb(SSL* ssl,
                      const EVP_MD* md,
                      const unsigned char** id,
                      size_t* idlen,
                      SSL_SESSION** sess)
{
    *sess = NULL;
    *id = NULL;
    *idlen = 0;
    if (md != NULL && EVP_MD_get_type(md) != NID_sha256) {
        return 1;
    }
    *sess = psk_session(ssl);
    if (*sess == NULL) {
        return 0;
    }
    *id = (const unsigned char*)PSK_IDENTITY;
    *idlen = strlen(PSK_IDENTITY);
    return 1;
}

/* Server: the PSK for our identity; none for another (the handshake then
 * fails: the server has no certificate). The binder proves the client
 * holds the key. */
static int psk_find_cb(SSL* ssl,
                       const unsigned char* id,
                       size_t idlen,
                       SSL_SESSION** sess)
{
    *sess = NULL;
    if (idlen != strlen(PSK_IDENTITY) || memcmp(id, PSK_IDENTITY, idlen) != 0) {
        return 1;
    }
    *sess = psk_session(ssl);
    return *sess != NULL;
}

/* ---- certificates ---- */

static int load_certs(struct tls_config* c,
                      const struct tls_config_options* o,
                      char* err,
                      size_t cap)
{
    char why[160];
    if (SSL_CTX_use_certificate_chain_file(c->ctx, o->cert_file) != 1) {
        ssl_reason(why, sizeof(why), "cannot read it");
        snprintf(err, cap, "--peer-cert-file %s: not a PEM certificate (%s)",
                 o->cert_file, why);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx, o->key_file, SSL_FILETYPE_PEM) !=
        1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) ==
            X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            snprintf(err, cap,
                     "--peer-key-file %s is not the key of --peer-cert-file "
                     "%s",
                     o->key_file, o->cert_file);
            return -EINVAL;
        }
        ssl_reason(why, sizeof(why), "cannot read it");
        snprintf(err, cap, "--peer-key-file %s: not a PEM private key (%s)",
                 o->key_file, why);
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(c->ctx) != 1) {
        ERR_clear_error();
        snprintf(err, cap,
                 "--peer-key-file %s is not the key of --peer-cert-file %s",
                 o->key_file, o->cert_file);
        return -EINVAL;
    }
    if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) != 1) {
        ssl_reason(why, sizeof(why), "cannot read it");
        snprintf(err, cap, "--peer-trusted-ca-file %s: no PEM certificate (%s)",
                 o->ca_file, why);
        return -EINVAL;
    }
    SSL_CTX_set_verify(c->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);

    /* Our own certificate must pass the check our peers will make: signed
     * by the CA, valid now (expiry is an error here, not a silent retry
     * loop later), and naming this member. */
    X509* cert = SSL_CTX_get0_certificate(c->ctx);
    STACK_OF(X509)* chain = NULL;
    SSL_CTX_get0_chain_certs(c->ctx, &chain);
    X509_STORE_CTX* v = X509_STORE_CTX_new();
    if (v == NULL || X509_STORE_CTX_init(v, SSL_CTX_get_cert_store(c->ctx),
                                         cert, chain) != 1) {
        X509_STORE_CTX_free(v);
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    int ok = X509_verify_cert(v);
    int verr = X509_STORE_CTX_get_error(v);
    X509_STORE_CTX_free(v);
    if (ok != 1) {
        ERR_clear_error();
        snprintf(err, cap,
                 "--peer-cert-file %s: %s (checked against "
                 "--peer-trusted-ca-file %s)",
                 o->cert_file, X509_verify_cert_error_string(verr), o->ca_file);
        return -EINVAL;
    }
    if (o->self_name != NULL &&
        X509_check_host(cert, o->self_name, 0, 0, NULL) != 1) {
        snprintf(err, cap,
                 "--peer-cert-file %s does not name this member '%s' (it "
                 "needs subjectAltName DNS:%s, or CN=%s and no DNS name)",
                 o->cert_file, o->self_name, o->self_name, o->self_name);
        return -EINVAL;
    }
    return 0;
}

int tls_config_new(const struct tls_config_options* o,
                   struct tls_config** out,
                   char* err,
                   size_t cap)
{
    bool certs =
        o->cert_file != NULL || o->key_file != NULL || o->ca_file != NULL;
    *out = NULL;
    if (certs && o->secret_file != NULL) {
        snprintf(err, cap,
                 "--peer-secret-file and the certificate flags are "
                 "exclusive: choose one");
        return -EINVAL;
    }
    if (certs &&
        (o->cert_file == NULL || o->key_file == NULL || o->ca_file == NULL)) {
        snprintf(err, cap,
                 "certificates need all three of --peer-cert-file, "
                 "--peer-key-file and --peer-trusted-ca-file");
        return -EINVAL;
    }
    if (!certs && o->secret_file == NULL) {
        snprintf(err, cap, "no certificate and no secret file");
        return -EINVAL;
    }
    struct tls_config* c = calloc(1, sizeof(*c));
    if (c == NULL || (c->ctx = SSL_CTX_new(TLS_method())) == NULL) {
        free(c);
        snprintf(err, cap, "out of memory");
        return -ENOMEM;
    }
    SSL_CTX_set_app_data(c->ctx, c);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(c->ctx, TLS1_3_VERSION);
    SSL_CTX_set_num_tickets(c->ctx, 0);
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET);
    int rv;
    if (certs) {
        rv = load_certs(c, o, err, cap);
    } else {
        uint8_t secret[TLS_SECRET_MAX + 1];
        size_t len = 0;
        c->psk = true;
        rv = read_secret(o->secret_file, secret, &len, err, cap);
        if (rv == 0 && derive_key(secret, len, c->key) != 0) {
            snprintf(err, cap, "--peer-secret-file: key derivation failed");
            rv = -ENOMEM;
        }
        OPENSSL_cleanse(secret, sizeof(secret));
        /* Only SHA-256 suites: the server drops a PSK whose hash is not
         * that of the suite it picks (and would pick AES-256/SHA-384). */
        if (SSL_CTX_set_ciphersuites(c->ctx,
                                     "TLS_AES_128_GCM_SHA256:"
                                     "TLS_CHACHA20_POLY1305_SHA256") != 1) {
            snprintf(err, cap, "no TLS 1.3 SHA-256 cipher suite");
            rv = -EINVAL;
        }
        SSL_CTX_set_psk_use_session_callback(c->ctx, psk_use_cb);
        SSL_CTX_set_psk_find_session_callback(c->ctx, psk_find_cb);
    }
    if (rv != 0) {
        tls_config_free(c);
        return rv;
    }
    *out = c;
    return 0;
}

void tls_config_free(struct tls_config* c)
{
    if (c == NULL) {
        return;
    }
    SSL_CTX_free(c->ctx);
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c);
}

const char* tls_config_mode(const struct tls_config* c)
{
    return c->psk ? "shared secret" : "certificates";
}

/* ---- sessions ---- */

struct tls* tls_new(struct tls_config* c, bool client)
{
    struct tls* s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->cfg = c;
    s->ssl = SSL_new(c->ctx);
    s->in = BIO_new(BIO_s_mem());
    s->out = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->in == NULL || s->out == NULL) {
        BIO_free(s->in);
        BIO_free(s->out);
        SSL_free(s->ssl);
        free(s);
        return NULL;
    }
    /* An empty input BIO means "more later", not end of stream. */
    BIO_set_mem_eof_return(s->in, -1);
    SSL_set_bio(s->ssl, s->in, s->out); /* ssl owns both now */
    if (client) {
        SSL_set_connect_state(s->ssl);
    } else {
        SSL_set_accept_state(s->ssl);
    }
    return s;
}

void tls_free(struct tls* s)
{
    if (s != NULL) {
        SSL_free(s->ssl);
        free(s);
    }
}

int tls_feed(struct tls* s, const void* p, size_t len)
{
    while (len > 0) {
        int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
        int n = BIO_write(s->in, p, chunk);
        if (n != chunk) {
            snprintf(s->err, sizeof(s->err), "out of memory");
            return -ENOMEM;
        }
        p = (const uint8_t*)p + n;
        len -= (size_t)n;
    }
    return 0;
}

/* Why the handshake or a record failed: the certificate check's verdict
 * when there is one, else OpenSSL's reason. */
static void session_error(struct tls* s, const char* fallback)
{
    long vr = SSL_get_verify_result(s->ssl);
    if (vr != X509_V_OK) {
        snprintf(s->err, sizeof(s->err), "peer certificate: %s",
                 X509_verify_cert_error_string(vr));
        ERR_clear_error();
        return;
    }
    ssl_reason(s->err, sizeof(s->err), fallback);
}

int tls_handshake(struct tls* s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        if (s->cfg->psk && SSL_session_reused(s->ssl) != 1) {
            snprintf(s->err, sizeof(s->err),
                     "peer did not prove the shared secret");
            return -EACCES;
        }
        return 1;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    session_error(s, "handshake failed");
    return -EACCES;
}

long tls_read(struct tls* s, void* out, size_t cap)
{
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(s->ssl, out, cap, &got) == 1) {
        return (long)got;
    }
    int e = SSL_get_error(s->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(s->err, sizeof(s->err), "peer closed the session");
        return -EPIPE;
    }
    session_error(s, "bad record");
    return -EPROTO;
}

int tls_write(struct tls* s, const void* p, size_t len)
{
    size_t done = 0;
    ERR_clear_error();
    if (len == 0) {
        return 0;
    }
    if (SSL_write_ex(s->ssl, p, len, &done) != 1 || done != len) {
        session_error(s, "write failed");
        return -EPROTO;
    }
    return 0;
}

size_t tls_pending(const struct tls* s)
{
    return BIO_ctrl_pending(s->out);
}

size_t tls_take(struct tls* s, void* out, size_t cap)
{
    int want = cap > (1u << 30) ? 1 << 30 : (int)cap;
    int n = want > 0 ? BIO_read(s->out, out, want) : 0;
    return n > 0 ? (size_t)n : 0;
}

bool tls_peer_is(const struct tls* s, const char* name)
{
    if (s->cfg->psk) {
        return SSL_session_reused(s->ssl) == 1;
    }
    X509* cert = SSL_get0_peer_certificate(s->ssl);
    return cert != NULL && SSL_get_verify_result(s->ssl) == X509_V_OK &&
           X509_check_host(cert, name, 0, 0, NULL) == 1;
}

/* A name candidate: the member it names has the id wanted, and the
 * certificate carries it the way tls_peer_is checks. */
static bool name_has_id(X509* cert,
                        const char* name,
                        size_t len,
                        uint64_t id,
                        uint64_t (*id_of)(const char* name),
                        char* out,
                        size_t cap)
{
    char buf[256];
    if (len == 0 || len >= sizeof(buf) || memchr(name, '\0', len) != NULL) {
        return false;
    }
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (id_of(buf) != id || X509_check_host(cert, buf, len, 0, NULL) != 1) {
        return false;
    }
    if (out != NULL && cap > 0) {
        snprintf(out, cap, "%s", buf);
    }
    return true;
}

bool tls_peer_has_id(const struct tls* s,
                     uint64_t id,
                     uint64_t (*id_of)(const char* name),
                     char* name,
                     size_t cap)
{
    if (name != NULL && cap > 0) {
        name[0] = '\0';
    }
    if (s->cfg->psk) {
        return SSL_session_reused(s->ssl) == 1;
    }
    X509* cert = SSL_get0_peer_certificate(s->ssl);
    if (id_of == NULL || cert == NULL ||
        SSL_get_verify_result(s->ssl) != X509_V_OK) {
        return false;
    }
    /* The names X509_check_host matches (flags 0): the SAN DNS names, or
     * the subject's CNs when there is none. */
    bool found = false, any_dns = false;
    GENERAL_NAMES* sans =
        X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; i < sk_GENERAL_NAME_num(sans) && !found; i++) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS) {
            continue;
        }
        any_dns = true;
        found = name_has_id(
            cert, (const char*)ASN1_STRING_get0_data(g->d.dNSName),
            (size_t)ASN1_STRING_length(g->d.dNSName), id, id_of, name, cap);
    }
    GENERAL_NAMES_free(sans);
    const X509_NAME* subject = X509_get_subject_name(cert);
    for (int i = -1; !found && !any_dns && subject != NULL;) {
        i = X509_NAME_get_index_by_NID(subject, NID_commonName, i);
        if (i < 0) {
            break;
        }
        const ASN1_STRING* cn =
            X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        found =
            name_has_id(cert, (const char*)ASN1_STRING_get0_data(cn),
                        (size_t)ASN1_STRING_length(cn), id, id_of, name, cap);
    }
    return found;
}

const char* tls_error(const struct tls* s)
{
    return s->err[0] != '\0' ? s->err : "unknown TLS error";
}
