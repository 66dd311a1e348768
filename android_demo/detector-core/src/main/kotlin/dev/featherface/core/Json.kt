package dev.featherface.core

/**
 * A small JSON reader (RFC 8259) for the manifest and golden files: no third-party library is needed.
 *
 * Values map to Kotlin as: object -> [JsonObject], array -> List<Any?>, string -> String,
 * number -> Double, true/false -> Boolean, null -> null.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        reader.skipWhitespace()
        val value = reader.readValue("$")
        reader.skipWhitespace()
        if (!reader.atEnd()) throw reader.error("unexpected text after the JSON value")
        return value
    }

    /** Parses [text] and requires an object at the top level; [source] names the file in errors. */
    fun parseObject(text: String, source: String): JsonObject {
        val value = try {
            parse(text)
        } catch (e: JsonException) {
            throw JsonException("$source: ${e.message}")
        }
        return value as? JsonObject ?: throw JsonException("$source: the top-level JSON value is not an object")
    }

    private class Reader(private val s: String) {
        private var i = 0

        fun atEnd() = i >= s.length

        fun error(what: String): JsonException {
            val line = s.substring(0, minOf(i, s.length)).count { it == '\n' } + 1
            return JsonException("$what at offset $i (line $line)")
        }

        fun skipWhitespace() {
            while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
        }

        fun readValue(path: String): Any? {
            if (atEnd()) throw error("unexpected end of input, expected a value for $path")
            return when (val c = s[i]) {
                '{' -> readObject(path)
                '[' -> readArray(path)
                '"' -> readString()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c in '0'..'9') readNumber() else throw error("unexpected character '$c'")
            }
        }

        private fun literal(word: String, value: Any?): Any? {
            if (!s.startsWith(word, i)) throw error("invalid literal, expected '$word'")
            i += word.length
            return value
        }

        private fun readObject(path: String): JsonObject {
            i++ // {
            val map = LinkedHashMap<String, Any?>()
            skipWhitespace()
            if (i < s.length && s[i] == '}') {
                i++
                return JsonObject(map, path)
            }
            while (true) {
                skipWhitespace()
                if (atEnd() || s[i] != '"') throw error("expected a string key in $path")
                val key = readString()
                skipWhitespace()
                expect(':')
                skipWhitespace()
                map[key] = readValue("$path.$key")
                skipWhitespace()
                if (atEnd()) throw error("unterminated object $path")
                when (s[i]) {
                    ',' -> i++
                    '}' -> { i++; return JsonObject(map, path) }
                    else -> throw error("expected ',' or '}' in $path")
                }
            }
        }

        private fun readArray(path: String): List<Any?> {
            i++ // [
            val list = ArrayList<Any?>()
            skipWhitespace()
            if (i < s.length && s[i] == ']') {
                i++
                return list
            }
            while (true) {
                skipWhitespace()
                list.add(readValue("$path[${list.size}]"))
                skipWhitespace()
                if (atEnd()) throw error("unterminated array $path")
                when (s[i]) {
                    ',' -> i++
                    ']' -> { i++; return list }
                    else -> throw error("expected ',' or ']' in $path")
                }
            }
        }

        private fun expect(c: Char) {
            if (atEnd() || s[i] != c) throw error("expected '$c'")
            i++
        }

        private fun readString(): String {
            i++ // opening quote
            val sb = StringBuilder()
            while (true) {
                if (atEnd()) throw error("unterminated string")
                val c = s[i++]
                when {
                    c == '"' -> return sb.toString()
                    c == '\\' -> {
                        if (atEnd()) throw error("unterminated escape")
                        when (val e = s[i++]) {
                            '"', '\\', '/' -> sb.append(e)
                            'b' -> sb.append('\b')
                            'f' -> sb.append('\u000C')
                            'n' -> sb.append('\n')
                            'r' -> sb.append('\r')
                            't' -> sb.append('\t')
                            'u' -> {
                                if (i + 4 > s.length) throw error("truncated \\u escape")
                                val hex = s.substring(i, i + 4)
                                sb.append(hex.toIntOrNull(16)?.toChar() ?: throw error("invalid \\u escape '$hex'"))
                                i += 4
                            }
                            else -> throw error("invalid escape '\\$e'")
                        }
                    }
                    c < ' ' -> throw error("control character in string")
                    else -> sb.append(c)
                }
            }
        }

        private fun readNumber(): Double {
            val start = i
            if (s[i] == '-') i++
            if (atEnd() || s[i] !in '0'..'9') throw error("invalid number")
            if (s[i] == '0') i++ else while (i < s.length && s[i] in '0'..'9') i++
            if (i < s.length && s[i] == '.') {
                i++
                if (atEnd() || s[i] !in '0'..'9') throw error("invalid number: digits expected after '.'")
                while (i < s.length && s[i] in '0'..'9') i++
            }
            if (i < s.length && (s[i] == 'e' || s[i] == 'E')) {
                i++
                if (i < s.length && (s[i] == '+' || s[i] == '-')) i++
                if (atEnd() || s[i] !in '0'..'9') throw error("invalid number: digits expected in exponent")
                while (i < s.length && s[i] in '0'..'9') i++
            }
            return s.substring(start, i).toDouble()
        }
    }
}

class JsonException(message: String) : RuntimeException(message)

/** A parsed JSON object with typed accessors whose errors name the missing or mistyped field. */
class JsonObject(val map: Map<String, Any?>, val path: String = "$") {
    operator fun contains(key: String) = key in map

    private fun field(key: String): Any? =
        if (key in map) map[key] else throw JsonException("${where(key)} is missing")

    private fun where(key: String) = if (path == "$") key else "${path.removePrefix("$.")}.$key"

    private fun wrong(key: String, expected: String): Nothing {
        val got = when (val v = map[key]) {
            null -> "null"
            is JsonObject -> "an object"
            is List<*> -> "an array"
            is String -> "a string"
            else -> v.toString()
        }
        throw JsonException("${where(key)} should be $expected, got $got")
    }

    fun obj(key: String): JsonObject = field(key) as? JsonObject ?: wrong(key, "an object")
    fun array(key: String): List<Any?> = field(key) as? List<Any?> ?: wrong(key, "an array")
    fun string(key: String): String = field(key) as? String ?: wrong(key, "a string")
    fun double(key: String): Double = field(key) as? Double ?: wrong(key, "a number")
    fun boolean(key: String): Boolean = field(key) as? Boolean ?: wrong(key, "true or false")

    fun int(key: String): Int {
        val d = double(key)
        if (d != Math.rint(d) || d > Int.MAX_VALUE || d < Int.MIN_VALUE) wrong(key, "an integer")
        return d.toInt()
    }

    fun optString(key: String): String? = map[key] as? String
    fun optObj(key: String): JsonObject? = map[key] as? JsonObject

    fun objects(key: String): List<JsonObject> =
        array(key).mapIndexed { n, v -> v as? JsonObject ?: throw JsonException("${where(key)}[$n] should be an object") }

    fun doubles(key: String): DoubleArray {
        val list = array(key)
        return DoubleArray(list.size) { n -> list[n] as? Double ?: throw JsonException("${where(key)}[$n] should be a number") }
    }

    fun floats(key: String): FloatArray {
        val list = array(key)
        return FloatArray(list.size) { n -> (list[n] as? Double ?: throw JsonException("${where(key)}[$n] should be a number")).toFloat() }
    }

    fun ints(key: String): IntArray = doubles(key).map { d ->
        if (d != Math.rint(d)) throw JsonException("${where(key)} should hold integers, got $d")
        d.toInt()
    }.toIntArray()

    fun intLists(key: String): List<IntArray> = array(key).mapIndexed { n, v ->
        val inner = v as? List<*> ?: throw JsonException("${where(key)}[$n] should be an array")
        IntArray(inner.size) { m ->
            val d = inner[m] as? Double ?: throw JsonException("${where(key)}[$n][$m] should be a number")
            if (d != Math.rint(d)) throw JsonException("${where(key)}[$n][$m] should be an integer, got $d")
            d.toInt()
        }
    }
}
