/* core_json.h: JSON string bodies from any bytes, for every place trail writes JSON by hand (the
 * output layer, HTTP error bodies, the reject file).
 *
 * Printable ASCII and well-formed UTF-8 are kept as they are; '"' and '\' are escaped, newline, CR
 * and tab as \n, \r and \t; other control bytes, DEL and bytes that are not part of well-formed
 * UTF-8 become \u00XX (read as Latin-1). So the output is valid JSON and valid UTF-8 whatever the
 * input held, and readable text reads as it was.
 */
#ifndef TRAIL_CORE_JSON_H
#define TRAIL_CORE_JSON_H

#include <stddef.h>
#include <stdio.h>

/** @brief Length of the UTF-8 character at s[0..n) if it is one well-formed character (no
 *  overlong form, no surrogate, at most U+10FFFF), else 0. */
size_t core_utf8_char(const unsigned char *s, size_t n);

/** @brief At most max bytes of s[0..n), not ending inside a well-formed UTF-8 character. */
size_t core_utf8_cut(const char *s, size_t n, size_t max);

/** @brief Write s[0..n) to f as the body of a JSON string (no quotes). */
void core_json_write(FILE *f, const char *s, size_t n);

/** @brief Write s as a JSON string, quotes included. */
void core_json_str(FILE *f, const char *s);

/** @brief The body of a JSON string for s into out (cap >= 1 bytes, NUL-terminated), cut before
 *  the first character whose escape would not fit: never inside an escape or a character.
 *  @return the bytes written, NUL excluded. */
size_t core_json_escape(char *out, size_t cap, const char *s);

#endif
