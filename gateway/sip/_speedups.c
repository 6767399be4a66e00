/* Fast path of gateway/sip/parser.py for the messages nearly every call carries.
 *
 * `scan(data, stream)` reads one complete SIP message and returns what the pure-Python parser would
 * return for it, or None ("declined") for anything outside a deliberately narrow, common form: ASCII
 * only, no folding, known header names, plain Request-URI / Via / From / To, every mandatory header
 * present once and well-formed. The Python parser stays the reference: it handles every declined
 * message, every error and every status hint, so this file never decides what is malformed, only
 * what is plainly well-formed. tests/sip/test_parser_speedups.py checks that both paths agree.
 *
 * Untrusted input: every read is bounded by `end`; no buffer is written but Python objects.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Character classes, one bit each, looked up in one table per byte. */
enum {
    C_TOKEN = 1 << 0,     /* RFC 3261 token */
    C_HOST = 1 << 1,      /* [A-Za-z0-9_.-] */
    C_USER = 1 << 2,      /* [A-Za-z0-9-_.!~*'()&=+$,;?/] (plain URI user part) */
    C_UPARAM = 1 << 3,    /* [A-Za-z0-9-.!%*_+`'~[]/:&$] (plain URI parameter value) */
    C_NA_SCHEME = 1 << 4, /* [!#-9;=?-~] */
    C_NA_REST = 1 << 5,   /* [!#-;=?-~] */
    C_AS_SCHEME = 1 << 6, /* [!#-9=?-~] */
    C_TAG = 1 << 7,       /* [!#-:=?-~] (addr-spec rest and tag value) */
    C_LINE = 1 << 8,      /* printable ASCII, SP, HT: what a header line may hold here */
};

static unsigned short classes[256];

static void
fill_classes(void)
{
    const char *token_extra = "-.!%*_+`'~";
    const char *user_extra = "-_.!~*'()&=+$,;?/";
    const char *uparam_extra = "-.!%*_+`'~[]/:&$";
    for (int c = 0; c < 256; c++) {
        unsigned short bits = 0;
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum || (c && strchr(token_extra, c)))
            bits |= C_TOKEN;
        if (alnum || c == '_' || c == '.' || c == '-')
            bits |= C_HOST;
        if (alnum || (c && strchr(user_extra, c)))
            bits |= C_USER;
        if (alnum || (c && strchr(uparam_extra, c)))
            bits |= C_UPARAM;
        if (c == 0x21 || (c >= 0x23 && c <= 0x39) || c == 0x3B || c == 0x3D || (c >= 0x3F && c <= 0x7E))
            bits |= C_NA_SCHEME;
        if (c == 0x21 || (c >= 0x23 && c <= 0x3B) || c == 0x3D || (c >= 0x3F && c <= 0x7E))
            bits |= C_NA_REST;
        if (c == 0x21 || (c >= 0x23 && c <= 0x39) || c == 0x3D || (c >= 0x3F && c <= 0x7E))
            bits |= C_AS_SCHEME;
        if (c == 0x21 || (c >= 0x23 && c <= 0x3A) || c == 0x3D || (c >= 0x3F && c <= 0x7E))
            bits |= C_TAG;
        if ((c >= 0x20 && c <= 0x7E) || c == '\t')
            bits |= C_LINE;
        classes[c] = bits;
    }
}

#define IS(cls, ch) (classes[(unsigned char)(ch)] & (cls))

typedef const unsigned char *cursor;

/* Every byte printable ASCII, SP or HT. Branch-free: lines are long and nearly always pass. */
static int
line_text(cursor p, cursor end)
{
    unsigned int ok = C_LINE;
    for (; p < end; p++)
        ok &= classes[*p];
    return ok != 0;
}

static cursor
skip(cursor p, cursor end, unsigned short cls)
{
    while (p < end && IS(cls, *p))
        p++;
    return p;
}

/* Module state set once by configure(). */
static PyObject *name_cache;   /* dict: raw header name -> canonical name (shared with parser.py) */
static PyObject *via_class;    /* gateway.sip.headers.Via */
static PyObject *str_branch, *str_rport;
enum { N_VIA, N_FROM, N_TO, N_CALL_ID, N_CSEQ, N_CONTENT_LENGTH, N_MAX_FORWARDS, N_ROUTE,
       N_RECORD_ROUTE, N_CONTACT, N_SPECIAL };
static PyObject *special[N_SPECIAL];

/* A plain sip:/sips: URI as PLAIN_SIP_URI_PATTERN in gateway/sip/uri.py describes it. */
static int
plain_sip_uri(cursor p, cursor end)
{
    if (end - p < 4 || (p[0] | 0x20) != 's' || (p[1] | 0x20) != 'i' || (p[2] | 0x20) != 'p')
        return 0;
    p += 3;
    if (p < end && (*p | 0x20) == 's')
        p++;
    if (p >= end || *p != ':')
        return 0;
    p++;
    cursor user_end = skip(p, end, C_USER);
    if (user_end > p && user_end < end && *user_end == '@')
        p = user_end + 1;
    if (p >= end || !(IS(C_HOST, *p) && *p != '.' && *p != '-'))
        return 0;
    cursor host_end = skip(p + 1, end, C_HOST);
    if (host_end - p > 1 && host_end[-1] == '-')
        return 0;
    p = host_end;
    if (p < end && *p == ':') {
        cursor digits = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits || p - digits > 4)
            return 0;
    }
    while (p < end) {
        if (*p != ';')
            return 0;
        cursor name = ++p;
        p = skip(p, end, C_TOKEN);
        if (p == name)
            return 0;
        if (p < end && *p == '=') {
            cursor value = ++p;
            p = skip(p, end, C_UPARAM);
            if (p == value)
                return 0;
        }
    }
    return 1;
}

/* From/To in the plain form of plain_name_addr_tag (gateway/sip/headers.py): 1 and the tag (or NULL
 * bounds when absent) for a plain value, 0 otherwise. */
static int
plain_name_addr_tag(cursor p, cursor end, cursor *tag, cursor *tag_end)
{
    cursor start = p;
    *tag = *tag_end = NULL;
    int angle = 0;
    if (p < end && *p == '"') {
        p++;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p >= end || *p != '"')
            return 0;
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p >= end || *p != '<')
            return 0;
        angle = 1;
    }
    else {
        while (p < end && (IS(C_TOKEN, *p) || *p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p == '<')
            angle = 1;
        else
            p = start;
    }
    if (angle) {
        cursor scheme = ++p;
        p = skip(p, end, C_NA_SCHEME);
        if (p == scheme || p >= end || *p != ':')
            return 0;
        p = skip(p + 1, end, C_NA_REST);
        if (p >= end || *p != '>')
            return 0;
        p++;
    }
    else {
        cursor scheme = p;
        p = skip(p, end, C_AS_SCHEME);
        if (p == scheme || p >= end || *p != ':')
            return 0;
        p = skip(p + 1, end, C_TAG);
    }
    if (p == end)
        return 1;
    if (end - p < 6 || memcmp(p, ";tag=", 5) != 0)
        return 0;
    p += 5;
    cursor value = p;
    p = skip(p, end, C_TAG);
    if (p == value || p != end)
        return 0;
    *tag = value;
    *tag_end = end;
    return 1;
}

/* Text already checked to be ASCII: one allocation and a copy, no second validating pass. */
static PyObject *
ascii(cursor p, cursor end)
{
    PyObject *text = PyUnicode_New(end - p, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), p, end - p);
    return text;
}

/* Raw header name bytes -> canonical name, in front of parser.py's name cache so that a known name
 * costs a hash of its bytes rather than a str object and a dict lookup. Safe because that cache is
 * append-only (a raw name's canonical name never changes). Fixed size; when full, the dict alone. */
#define NAME_SLOTS 512
#define NAME_MAX_LEN 48
typedef struct {
    unsigned char length;
    unsigned char bytes[NAME_MAX_LEN];
    PyObject *canonical;
} name_slot;
static name_slot name_slots[NAME_SLOTS];
static int name_slots_used;

/* New reference to the canonical name, NULL without an exception for a name not known yet. */
static PyObject *
canonical_name(cursor p, cursor end)
{
    Py_ssize_t length = end - p;
    name_slot *slot = NULL;
    if (length > 0 && length <= NAME_MAX_LEN) {
        unsigned int hash = 2166136261u;
        for (cursor c = p; c < end; c++)
            hash = (hash ^ *c) * 16777619u;
        for (unsigned int probe = 0; probe < NAME_SLOTS; probe++) {
            slot = &name_slots[(hash + probe) & (NAME_SLOTS - 1)];
            if (slot->canonical == NULL)
                break;
            if (slot->length == length && memcmp(slot->bytes, p, length) == 0)
                return Py_NewRef(slot->canonical);
        }
    }
    PyObject *raw_name = ascii(p, end);
    if (raw_name == NULL)
        return NULL;
    PyObject *name = Py_XNewRef(PyDict_GetItemWithError(name_cache, raw_name));
    Py_DECREF(raw_name);
    if (name != NULL && slot != NULL && slot->canonical == NULL && name_slots_used < NAME_SLOTS * 3 / 4) {
        slot->length = (unsigned char)length;
        memcpy(slot->bytes, p, length);
        slot->canonical = Py_NewRef(name);
        name_slots_used++;
    }
    return name;
}

/* The top Via in the plain form parse_via takes without its full grammar; NULL with no exception
 * set when the value is not plain. */
static PyObject *
plain_via(cursor p, cursor end)
{
    if (end - p < 8 || memcmp(p, "SIP/2.0/", 8) != 0)
        return NULL;
    p += 8;
    cursor transport = p;
    p = skip(p, end, C_TOKEN);
    if (p == transport || p >= end || *p != ' ')
        return NULL;
    cursor transport_end = p;
    cursor host = ++p;
    p = skip(p, end, C_HOST);
    if (p == host)
        return NULL;
    cursor host_end = p;
    long port = -1;
    if (p < end && *p == ':') {
        cursor digits = ++p;
        port = 0;
        while (p < end && *p >= '0' && *p <= '9' && p - digits < 6)
            port = port * 10 + (*p++ - '0');
        if (p == digits || p - digits > 5 || port > 65535)
            return NULL;
    }
    /* which params: 0 none, 1 branch, 2 branch;rport, 3 rport;branch */
    int form;
    cursor branch = NULL, branch_end = NULL;
    if (p == end)
        form = 0;
    else if (end - p > 8 && memcmp(p, ";branch=", 8) == 0) {
        branch = p + 8;
        branch_end = skip(branch, end, C_TOKEN);
        if (branch_end == branch)
            return NULL;
        if (branch_end == end)
            form = 1;
        else if (end - branch_end == 6 && memcmp(branch_end, ";rport", 6) == 0)
            form = 2;
        else
            return NULL;
    }
    else if (end - p > 14 && memcmp(p, ";rport;branch=", 14) == 0) {
        branch = p + 14;
        branch_end = skip(branch, end, C_TOKEN);
        if (branch_end == branch || branch_end != end)
            return NULL;
        form = 3;
    }
    else
        return NULL;

    PyObject *transport_text = PyUnicode_New(transport_end - transport, 127);
    if (transport_text == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(transport_text);
    for (cursor c = transport; c < transport_end; c++)
        *out++ = (*c >= 'a' && *c <= 'z') ? *c - 32 : *c;
    PyObject *host_text = ascii(host, host_end);
    PyObject *port_obj = port < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(port);
    PyObject *params = PyDict_New();
    PyObject *branch_text = branch ? ascii(branch, branch_end) : NULL;
    PyObject *via = NULL;
    if (host_text && port_obj && params && (branch_text || !branch)) {
        int failed = 0;
        if (form == 3)
            failed = PyDict_SetItem(params, str_rport, Py_None) < 0;
        if (form && !failed)
            failed = PyDict_SetItem(params, str_branch, branch_text) < 0;
        if (form == 2 && !failed)
            failed = PyDict_SetItem(params, str_rport, Py_None) < 0;
        if (!failed) {
            PyObject *args[4] = {transport_text, host_text, port_obj, params};
            via = PyObject_Vectorcall(via_class, args, 4, NULL);
        }
    }
    Py_DECREF(transport_text);
    Py_XDECREF(host_text);
    Py_XDECREF(port_obj);
    Py_XDECREF(params);
    Py_XDECREF(branch_text);
    return via;
}

/* 1..max_digits ASCII digits, the whole of [p, end): the value, or -1. */
static long long
digits_value(cursor p, cursor end, int max_digits)
{
    if (p == end || end - p > max_digits)
        return -1;
    long long value = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
    }
    return value;
}

#define DECLINE() do { goto declined; } while (0)
#define FAIL() do { goto failed; } while (0)

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan(data: bytes, stream: bool)");
        return NULL;
    }
    if (name_cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    int stream = PyObject_IsTrue(args[1]);
    if (stream < 0)
        return NULL;
    cursor data = (cursor)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if ((!stream && size > 65535) || size < 4 || (data[0] == '\r' && data[1] == '\n'))
        Py_RETURN_NONE;
    cursor end = data + size;
    cursor head_end = NULL;
    for (cursor p = data; p + 3 < end; p++) {
        p = memchr(p, '\r', end - 3 - p);
        if (p == NULL)
            break;
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n') {
            head_end = p;
            break;
        }
    }
    if (head_end == NULL)
        Py_RETURN_NONE;

    PyObject *first = NULL, *second = NULL, *headers = NULL, *call_id = NULL, *cseq = NULL;
    PyObject *top_via = NULL, *from_tag = NULL, *to_tag = NULL, *body = NULL, *result = NULL;
    cursor seen[N_SPECIAL][2];
    memset(seen, 0, sizeof seen);
    int needs_split = 0;

    /* start line */
    cursor line_end = memchr(data, '\r', head_end - data + 1);
    if (line_end == NULL || line_end[1] != '\n')
        DECLINE();
    if (!line_text(data, line_end) || memchr(data, '\t', line_end - data) != NULL)
        DECLINE();
    int is_request;
    cursor method = NULL, method_end = NULL;
    if (line_end - data >= 8 && memcmp(data, "SIP/2.0 ", 8) == 0) {
        is_request = 0;
        cursor code = data + 8;
        if (line_end - code < 3 || code[0] < '1' || code[0] > '6' || code[1] < '0' || code[1] > '9'
            || code[2] < '0' || code[2] > '9' || (line_end - code > 3 && code[3] != ' '))
            DECLINE();
        first = PyLong_FromLong((code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0'));
        second = ascii(line_end - code > 3 ? code + 4 : line_end, line_end);
    }
    else {
        is_request = 1;
        if (line_end - data > 2048 || line_end - data < 10 || memcmp(line_end - 8, " SIP/2.0", 8) != 0)
            DECLINE();
        method = data;
        method_end = skip(data, line_end, C_TOKEN);
        if (method_end == data || *method_end != ' ')
            DECLINE();
        cursor uri = method_end + 1, uri_end = line_end - 8;
        if (uri >= uri_end || !plain_sip_uri(uri, uri_end))
            DECLINE();
        first = ascii(method, method_end);
        second = ascii(uri, uri_end);
    }
    if (first == NULL || second == NULL)
        FAIL();

    /* header lines */
    headers = PyList_New(0);
    if (headers == NULL)
        FAIL();
    cursor p = line_end + 2;
    while (p < head_end + 2) {
        cursor line = p;
        p = memchr(p, '\r', head_end - p);
        if (p == NULL)
            p = head_end;
        else if (p[1] != '\n')
            DECLINE(); /* a lone CR */
        if (!line_text(line, p))
            DECLINE();
        cursor colon = memchr(line, ':', p - line);
        line_end = p;
        p += 2;
        if (colon == NULL || *line == ' ' || *line == '\t')
            DECLINE();
        /* a strong reference: creating the value below may run the GC, and with it any code */
        PyObject *name = canonical_name(line, colon);
        if (name == NULL) {
            if (PyErr_Occurred())
                FAIL();
            DECLINE();
        }
        cursor value = colon + 1, value_end = line_end;
        while (value < value_end && (*value == ' ' || *value == '\t'))
            value++;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        for (int i = 0; i < N_SPECIAL; i++) {
            if (name != special[i])
                continue;
            int has_comma = memchr(value, ',', value_end - value) != NULL;
            if (i >= N_ROUTE) {
                needs_split |= has_comma;
            }
            else if (i == N_VIA) {
                needs_split |= has_comma;
                if (seen[i][0] == NULL) {
                    if (has_comma) {
                        Py_DECREF(name);
                        DECLINE();
                    }
                    seen[i][0] = value;
                    seen[i][1] = value_end;
                }
            }
            else {
                if (seen[i][0] != NULL) {
                    Py_DECREF(name);
                    DECLINE(); /* a repeated single header: the Python parser decides */
                }
                seen[i][0] = value;
                seen[i][1] = value_end;
            }
            break;
        }
        PyObject *value_text = ascii(value, value_end);
        if (value_text == NULL) {
            Py_DECREF(name);
            FAIL();
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name);
            Py_DECREF(value_text);
            FAIL();
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value_text);
        if (PyList_Append(headers, pair) < 0) {
            Py_XDECREF(pair);
            FAIL();
        }
        Py_DECREF(pair);
    }
    for (int i = N_VIA; i <= N_CSEQ; i++)
        if (seen[i][0] == NULL)
            DECLINE();

    /* CSeq: 1-10 digits < 2**31, LWS, a method (the request's own) */
    {
        cursor c = seen[N_CSEQ][0], c_end = seen[N_CSEQ][1];
        cursor number_end = c;
        while (number_end < c_end && *number_end >= '0' && *number_end <= '9')
            number_end++;
        long long number = digits_value(c, number_end, 10);
        cursor m = number_end;
        while (m < c_end && (*m == ' ' || *m == '\t'))
            m++;
        if (number < 0 || number >= 2147483648LL || m == number_end || m == c_end)
            DECLINE();
        for (cursor q = m; q < c_end; q++)
            if (*q == ' ' || *q == '\t')
                DECLINE();
        if (is_request && (c_end - m != method_end - method || memcmp(m, method, c_end - m) != 0))
            DECLINE();
        PyObject *cseq_method = is_request ? Py_NewRef(first) : ascii(m, c_end);
        PyObject *cseq_number = PyLong_FromLongLong(number);
        if (cseq_method && cseq_number)
            cseq = PyTuple_Pack(2, cseq_number, cseq_method);
        Py_XDECREF(cseq_method);
        Py_XDECREF(cseq_number);
        if (cseq == NULL)
            FAIL();
    }
    if (seen[N_CALL_ID][0] == seen[N_CALL_ID][1])
        DECLINE();
    if (seen[N_MAX_FORWARDS][0] != NULL) {
        long long hops = digits_value(seen[N_MAX_FORWARDS][0], seen[N_MAX_FORWARDS][1], 3);
        if (hops < 0 || hops > 255)
            DECLINE();
    }
    cursor tag, tag_end;
    if (!plain_name_addr_tag(seen[N_FROM][0], seen[N_FROM][1], &tag, &tag_end))
        DECLINE();
    from_tag = tag ? ascii(tag, tag_end) : Py_NewRef(Py_None);
    if (from_tag == NULL)
        FAIL();
    if (!plain_name_addr_tag(seen[N_TO][0], seen[N_TO][1], &tag, &tag_end))
        DECLINE();
    to_tag = tag ? ascii(tag, tag_end) : Py_NewRef(Py_None);
    if (to_tag == NULL)
        FAIL();

    /* body: by Content-Length (RFC 3261 §18.3: octets past it in a datagram are discarded) */
    cursor body_start = head_end + 4;
    Py_ssize_t body_size = end - body_start;
    if (seen[N_CONTENT_LENGTH][0] != NULL) {
        long long length = digits_value(seen[N_CONTENT_LENGTH][0], seen[N_CONTENT_LENGTH][1], 10);
        if (length < 0 || length > body_size)
            DECLINE();
        body_size = (Py_ssize_t)length;
    }
    else if (stream)
        DECLINE();

    top_via = plain_via(seen[N_VIA][0], seen[N_VIA][1]);
    if (top_via == NULL) {
        if (PyErr_Occurred())
            FAIL();
        DECLINE();
    }
    call_id = ascii(seen[N_CALL_ID][0], seen[N_CALL_ID][1]);
    body = PyBytes_FromStringAndSize((const char *)body_start, body_size);
    if (call_id == NULL || body == NULL)
        FAIL();
    result = PyTuple_Pack(10, first, second, headers, body, call_id, cseq, top_via, from_tag, to_tag,
                          needs_split ? Py_True : Py_False);
    goto done;

declined:
    result = Py_NewRef(Py_None);
    goto done;
failed:
    result = NULL;
done:
    Py_XDECREF(first);
    Py_XDECREF(second);
    Py_XDECREF(headers);
    Py_XDECREF(call_id);
    Py_XDECREF(cseq);
    Py_XDECREF(top_via);
    Py_XDECREF(from_tag);
    Py_XDECREF(to_tag);
    Py_XDECREF(body);
    return result;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *cache, *names, *via;
    if (!PyArg_ParseTuple(args, "O!O!O:configure", &PyDict_Type, &cache, &PyTuple_Type, &names, &via))
        return NULL;
    if (PyTuple_GET_SIZE(names) != N_SPECIAL) {
        PyErr_Format(PyExc_ValueError, "configure: %d special header names expected", N_SPECIAL);
        return NULL;
    }
    for (int i = 0; i < N_SPECIAL; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "configure: header names are str");
            return NULL;
        }
    }
    for (int i = 0; i < N_SPECIAL; i++)
        Py_XSETREF(special[i], Py_NewRef(PyTuple_GET_ITEM(names, i)));
    if (cache != name_cache) {
        for (int i = 0; i < NAME_SLOTS; i++)
            Py_CLEAR(name_slots[i].canonical);
        name_slots_used = 0;
    }
    Py_XSETREF(name_cache, Py_NewRef(cache));
    Py_XSETREF(via_class, Py_NewRef(via));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(data, stream) -> tuple | None: the parser's fast path; None declines the message."},
    {"configure", configure, METH_VARARGS,
     "configure(name_cache, special_names, via_class): tie the fast path to parser.py's tables."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_speedups", "C fast path of gateway.sip.parser (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    fill_classes();
    str_branch = PyUnicode_InternFromString("branch");
    str_rport = PyUnicode_InternFromString("rport");
    if (str_branch == NULL || str_rport == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
