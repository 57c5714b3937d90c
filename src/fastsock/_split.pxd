# fastsock._split: message splitting shared by Stream and the event loop.
# A frame is a 4-byte big-endian unsigned length, then the payload; lines
# and delimited messages end with a separator found by memchr.  Inline
# functions only: nothing here allocates, raises or needs the GIL.
from libc.stdint cimport uint32_t
from libc.string cimport memchr, memcmp


cdef enum:
    HEADER = 4          # bytes of a frame header
    NEWLINE = 10        # b"\n", the end of a line


# The length announced by the frame header at p (HEADER bytes).
cdef inline Py_ssize_t frame_length(const char *p) noexcept nogil:
    cdef const unsigned char *u = <const unsigned char *>p
    return ((<uint32_t>u[0] << 24) | (<uint32_t>u[1] << 16)
            | (<uint32_t>u[2] << 8) | <uint32_t>u[3])


# Writes the header of an n-byte frame at p.
cdef inline void put_header(char *p, size_t n) noexcept nogil:
    p[0] = <char>((n >> 24) & 0xFF)
    p[1] = <char>((n >> 16) & 0xFF)
    p[2] = <char>((n >> 8) & 0xFF)
    p[3] = <char>(n & 0xFF)


# Offset of the first sep[0..seplen-1] in base[start..have-1], or -1.
# memchr finds each candidate first byte, so a one-byte separator (a
# newline) costs one memchr.
cdef inline Py_ssize_t find_sep(const char *base, Py_ssize_t have,
                                const char *sep, Py_ssize_t seplen,
                                Py_ssize_t start) noexcept nogil:
    cdef const char *p
    while start + seplen <= have:
        p = <const char *>memchr(base + start, sep[0],
                                 have - start - seplen + 1)
        if p == NULL:
            return -1
        if seplen == 1 or memcmp(p, sep, seplen) == 0:
            return p - base
        start = p - base + 1
    return -1
