package dev.featherface.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class JsonTest {
    @Test
    fun parsesNestedValuesNumbersAndEscapes() {
        val o = Json.parse("""{"a": [1, -2.5e-3, 0, 1E2], "s": "q\"\\\/\n\u00e9", "t": true, "f": false, "n": null, "o": {}}""") as JsonObject
        assertEquals(listOf(1.0, -0.0025, 0.0, 100.0), o.array("a"))
        assertEquals("q\"\\/\n\u00e9", o.string("s"))
        assertEquals(true, o.boolean("t"))
        assertEquals(false, o.boolean("f"))
        assertNull(o.map["n"])
        assertTrue(o.obj("o").map.isEmpty())
    }

    @Test
    fun float32ValuesWrittenByPythonRoundTrip() {
        // Python writes float32 values as the shortest float64 repr; toFloat() must give back the same float.
        val values = floatArrayOf(0.1f, 1e-30f, 3.4028235e38f, -7.1234567f, 0.99949455f)
        val text = values.joinToString(prefix = "{\"v\": [", postfix = "]}") { it.toDouble().toString() }
        val parsed = (Json.parse(text) as JsonObject).floats("v")
        assertTrue(values.contentEquals(parsed))
    }

    @Test
    fun errorsSayWhereAndWhat() {
        val e = assertThrows(JsonException::class.java) { Json.parse("{\"a\": [1, 2,, 3]}") }
        assertEquals("unexpected character ',' at offset 12 (line 1)", e.message)
        assertThrows(JsonException::class.java) { Json.parse("{\"a\": 1} x") }
        assertThrows(JsonException::class.java) { Json.parse("[01]") }
        assertThrows(JsonException::class.java) { Json.parse("\"open") }
        assertThrows(JsonException::class.java) { Json.parse("{\"a\" 1}") }
    }

    @Test
    fun typedAccessorsNameTheField() {
        val o = Json.parseObject("""{"priors": {"steps": [8, 16.5], "clip": "no"}}""", "manifest.json")
        val priors = o.obj("priors")
        assertEquals("priors.steps should hold integers, got 16.5", assertThrows(JsonException::class.java) { priors.ints("steps") }.message)
        assertEquals("priors.clip should be true or false, got a string", assertThrows(JsonException::class.java) { priors.boolean("clip") }.message)
        assertEquals("priors.variance is missing", assertThrows(JsonException::class.java) { priors.doubles("variance") }.message)
    }
}
