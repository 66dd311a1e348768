plugins {
    alias(libs.plugins.android.application)
}

android {
    namespace = "dev.featherface.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.featherface.demo"
        minSdk = 24
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
            // A benchmark must run the optimised build; debug signing keeps `installRelease` one step.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildFeatures {
        viewBinding = true
    }

    // The interpreter memory-maps the model straight from the APK: it must be stored uncompressed.
    androidResources {
        noCompress += "tflite"
    }
}

dependencies {
    implementation(project(":detector-core"))
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.appcompat)
    implementation(libs.material)
    implementation(libs.androidx.lifecycle.runtime.ktx)
    implementation(libs.kotlinx.coroutines.android)
    implementation(libs.camera.core)
    implementation(libs.camera.camera2)
    implementation(libs.camera.lifecycle)
    implementation(libs.camera.view)
    implementation(libs.litert)
    implementation(libs.litert.gpu)
    implementation(libs.litert.gpu.api)

    androidTestImplementation(libs.androidx.test.ext.junit)
    androidTestImplementation(libs.androidx.test.runner)
}

// ./gradlew copyModel -Ppackage=path/to/bundle.zip [-PbenchmarkImage=face.jpg]
// Unpacks a `featherface package` bundle (manifest.json + .tflite) into src/main/assets/model/, the
// place ModelAssets reads from. The golden vectors stay out of the APK (they are for the core tests).
val modelAssets = layout.projectDirectory.dir("src/main/assets/model")
val bundle = providers.gradleProperty("package")
val benchmarkImage = providers.gradleProperty("benchmarkImage")

tasks.register<Sync>("copyModel") {
    group = "featherface"
    description = "Unpacks a featherface package bundle (-Ppackage=bundle.zip) into src/main/assets/model"
    val zip = bundle.orElse(providers.provider {
        throw GradleException("pass the bundle: ./gradlew copyModel -Ppackage=path/to/bundle.zip (made by `featherface package`)")
    })
    from(zip.map { zipTree(it) }) {
        include("manifest.json", "*.tflite")
    }
    from(benchmarkImage.map { listOf(file(it)) }.orElse(emptyList<File>())) {
        rename { "benchmark" + it.substring(it.lastIndexOf('.')) }
    }
    into(modelAssets)
    doLast {
        val dir = modelAssets.asFile
        check(dir.resolve("manifest.json").isFile) { "the bundle has no manifest.json at its top level: is it a `featherface package` zip?" }
        check(dir.listFiles().orEmpty().any { it.name.endsWith(".tflite") }) {
            "the bundle has no .tflite artefact: export one (featherface export --format tflite) and package it"
        }
        logger.lifecycle("model assets: ${dir.listFiles().orEmpty().sortedBy { it.name }.joinToString { it.name }}")
    }
}
