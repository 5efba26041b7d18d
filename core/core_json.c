/* core_json.c: JSON string bodies from any bytes; see core_json.h. */
#include "core_json.h"

#include <string.h>

size_t core_utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (c > 0xF4 || !len || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
    if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
    return len;
}

size_t core_utf8_cut(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t k = max;
    for (size_t back = 0; back < 3 && k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80; back++)
        k--;
    /* s[k] starts the character the cut falls in; keep the cut where it was if that is no
     * well-formed character (invalid bytes are escaped one by one anyway) */
    return k < max && core_utf8_char((const unsigned char *)s + k, n - k) > max - k ? k : max;
}

/* The JSON form of the character at u[0..n) into out (at most 6 bytes); *used gets the input
 * bytes it took. @return the bytes written. */
static size_t json_char(const unsigned char *u, size_t n, char out[6], size_t *used) {
    static const char hex[] = "0123456789abcdef";
    unsigned char c = u[0];
    size_t len;
    *used = 1;
    if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') {
        out[0] = '\\', out[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : (char)c;
        return 2;
    }
    if (c >= 0x20 && c < 0x7f) {
        out[0] = (char)c;
        return 1;
    }
    if (c >= 0x80 && (len = core_utf8_char(u, n)) != 0) {
        memcpy(out, u, len);
        *used = len;
        return len;
    }
    memcpy(out, "\\u00", 4);
    out[4] = hex[c >> 4], out[5] = hex[c & 15];
    return 6;
}

void core_json_write(FILE *f, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    char buf[6];
    for (size_t i = 0, used; i < n; i += used)
        fwrite(buf, 1, json_char(u + i, n - i, buf, &used), f);
}

void core_json_str(FILE *f, const char *s) {
    fputc('"', f);
    core_json_write(f, s, strlen(s));
    fputc('"', f);
}

size_t core_json_escape(char *out, size_t cap, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), w = 0;
    char buf[6];
    for (size_t i = 0, used, k; i < n; i += used) {
        if ((k = json_char(u + i, n - i, buf, &used)) + 1 > cap - w) break;
        memcpy(out + w, buf, k);
        w += k;
    }
    out[w] = '\0';
    return w;
}
