// Pure Kotlin/JVM: priors, decoding, NMS, letterbox, manifest reader. No Android dependency, so the
// same sources also compile and test with plain kotlinc (run-tests.sh) where Gradle cannot resolve.
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(libs.junit)
}

tasks.test {
    // GoldenVectorTest needs FEATHERFACE_GOLDEN_DIR (python -m featherface_mobile.golden --out DIR);
    // -PgoldenDir=DIR works too.
    providers.gradleProperty("goldenDir").orNull?.let { systemProperty("featherface.golden.dir", file(it).absolutePath) }
    testLogging { events("failed"); showStandardStreams = true }
}
