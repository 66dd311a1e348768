// Versions live in gradle/libs.versions.toml. AGP 9 compiles Kotlin itself (built-in Kotlin), so the
// app applies no Kotlin plugin; detector-core is a plain Kotlin/JVM module.
plugins {
    alias(libs.plugins.android.application) apply false
    alias(libs.plugins.kotlin.jvm) apply false
}
