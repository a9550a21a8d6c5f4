/* tls.h - authenticated, encrypted peer channels: TLS 1.3 (OpenSSL) over
 * memory buffers, so the transport keeps driving its own libuv streams on
 * the one loop thread (docs/security.md).
 *
 * Two ways to prove membership, chosen when the node starts:
 *  - certificates (etcd's --peer-cert-file, --peer-key-file,
 *    --peer-trusted-ca-file): both ends present a certificate signed by
 *    the cluster's CA; the transport then checks that the certificate
 *    names (SAN DNS name, or CN when it has none) the member the peer
 *    claims to be in its HELLO (tls_peer_is);
 *  - a shared secret (--peer-secret-file): a TLS 1.3 external PSK derived
 *    from the file with HKDF-SHA256, used with an ephemeral key exchange
 *    (psk_dhe_ke), so a recorded session stays secret if the file leaks
 *    later. Whoever holds the secret is a member: it may claim any name.
 * Either way every byte after the handshake is in TLS records: a frame
 * cannot be forged, altered or replayed by anyone outside.
 *
 * A session never touches a socket: the caller feeds it what arrived
 * (tls_feed), drives it (tls_handshake, tls_read, tls_write) and sends
 * what it produced (tls_take). One thread at a time per session and per
 * configuration.
 */
#ifndef QFS_RAFT_TLS_H
#define QFS_RAFT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_config;
struct tls;

enum {
    TLS_SECRET_MIN = 16,   /* bytes of a secret file, after trimming */
    TLS_SECRET_MAX = 4096, /* a bigger file is refused */
    TLS_ERROR_MAX = 256,   /* a reason, incl. NUL */
};

struct tls_config_options {
    /* Certificate mode: all three, PEM files. */
    const char* cert_file;
    const char* key_file;
    const char* ca_file;
    /* Shared-secret mode: a file readable by its owner only. */
    const char* secret_file;
    /* Certificate mode: this node's member name, which its own certificate
     * must carry (checked at start, so a wrong file fails there). */
    const char* self_name;
};

/* Load and check the files: exactly one mode; the certificate and key
 * match; the certificate is valid now, signed by the CA and names
 * self_name; the secret file is a regular file of TLS_SECRET_MIN to
 * TLS_SECRET_MAX bytes that group and others cannot read. Returns 0, or
 * -EINVAL / -ENOMEM with the reason in err (it names the flag). */
int tls_config_new(const struct tls_config_options* o,
                   struct tls_config** out,
                   char* err,
                   size_t cap);
void tls_config_free(struct tls_config* c);
/* "certificates" or "shared secret", for logs. */
const char* tls_config_mode(const struct tls_config* c);

/* A session for one connection: client (the side that dialed) or server.
 * NULL when out of memory. */
struct tls* tls_new(struct tls_config* c, bool client);
void tls_free(struct tls* s);

/* Bytes that arrived from the peer. 0, or -ENOMEM. */
int tls_feed(struct tls* s, const void* p, size_t len);
/* Advance the handshake with what was fed: 1 when it is complete, 0 when
 * it needs more from the peer, -EACCES when it failed (tls_error says why;
 * tls_take may still hold an alert for the peer). */
int tls_handshake(struct tls* s);
/* Plaintext that arrived: > 0 bytes copied, 0 when none is available now,
 * -EPIPE when the peer closed the session, -EPROTO on a bad record. */
long tls_read(struct tls* s, void* out, size_t cap);
/* Encrypt len bytes of plaintext for the peer (after the handshake):
 * 0, or -EPROTO / -ENOMEM. */
int tls_write(struct tls* s, const void* p, size_t len);
/* Bytes produced for the peer and not yet taken. */
size_t tls_pending(const struct tls* s);
/* Move up to cap of them to out; returns the count. */
size_t tls_take(struct tls* s, void* out, size_t cap);
/* Whether the peer proved the member name `name`: in certificate mode its
 * certificate names it; in shared-secret mode any peer that completed the
 * handshake does. */
bool tls_peer_is(const struct tls* s, const char* name);
/* Whether the peer proved it is the member whose id is `id`, for a peer
 * the caller knows no name for (one outside its configuration): in
 * certificate mode a name its certificate carries (as tls_peer_is matches
 * them) maps to id by id_of, and that name is copied to name (cap bytes;
 * "" otherwise); id_of NULL: never. In shared-secret mode any peer that
 * completed the handshake does (every holder is a member). */
bool tls_peer_has_id(const struct tls* s,
                     uint64_t id,
                     uint64_t (*id_of)(const char* name),
                     char* name,
                     size_t cap);
/* Why the last call failed, for logs. */
const char* tls_error(const struct tls* s);

#endif /* QFS_RAFT_TLS_H */
