#!/usr/bin/env bash
# Compile detector-core and its JUnit tests with kotlinc and run them: no Gradle, no Maven.
#   android_demo/detector-core/run-tests.sh GOLDEN_DIR      (or FEATHERFACE_GOLDEN_DIR=GOLDEN_DIR ...)
# Installs what is missing: the npm package kotlin-compiler into <repo>/.tools/kotlin, and Debian's
# junit4 (apt-get, as root) when /usr/share/java/junit4.jar is absent. Exits non-zero on any failure.
set -euo pipefail

KOTLIN_VERSION=${KOTLIN_VERSION:-2.4.20}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TOOLS=${FEATHERFACE_TOOLS:-$REPO/.tools}
OUT=$HERE/build/kotlinc

if [ $# -ge 1 ]; then export FEATHERFACE_GOLDEN_DIR=$(cd "$1" && pwd); fi
if [ -z "${FEATHERFACE_GOLDEN_DIR:-}" ]; then
    echo "usage: $0 GOLDEN_DIR   (write one with: python -m featherface_mobile.golden --out GOLDEN_DIR)" >&2
    exit 2
fi

command -v java >/dev/null || { echo "java not found: install a JDK 17+ (apt-get install -y openjdk-17-jdk-headless)" >&2; exit 2; }

# Kotlin compiler (npm package kotlin-compiler: the JetBrains kotlinc distribution).
KOTLIN_HOME=$TOOLS/kotlin/node_modules/kotlin-compiler
if [ -n "${KOTLINC:-}" ]; then
    KOTLIN_HOME=$(cd "$(dirname "$KOTLINC")/.." && pwd)
elif [ ! -x "$KOTLIN_HOME/bin/kotlinc" ] || ! grep -q "\"version\": \"$KOTLIN_VERSION\"" "$KOTLIN_HOME/package.json"; then
    command -v npm >/dev/null || { echo "npm not found: install Node.js/npm or set KOTLINC to a kotlinc binary" >&2; exit 2; }
    echo "installing kotlin-compiler@$KOTLIN_VERSION into $TOOLS/kotlin" >&2
    mkdir -p "$TOOLS/kotlin"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/kotlin" "kotlin-compiler@$KOTLIN_VERSION" >&2
fi
KOTLINC_BIN=${KOTLINC:-$KOTLIN_HOME/bin/kotlinc}
STDLIB=$KOTLIN_HOME/lib/kotlin-stdlib.jar

# JUnit 4 from Debian.
JUNIT=${JUNIT_JAR:-/usr/share/java/junit4.jar}
HAMCREST=${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}
if [ ! -f "$JUNIT" ] || [ ! -f "$HAMCREST" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing junit4 with apt-get" >&2
        apt-get install -y -q junit4 >&2 || { apt-get update -q >&2 && apt-get install -y -q junit4 >&2; }
    else
        echo "JUnit 4 not found at $JUNIT: run 'apt-get install -y junit4' as root, or set JUNIT_JAR and HAMCREST_JAR" >&2
        exit 2
    fi
fi

rm -rf "$OUT"
mkdir -p "$OUT/main" "$OUT/test"
KFLAGS=(-jvm-target 17 -Werror)
# The main sources compile with nothing but the Kotlin stdlib on the classpath: that keeps them free
# of JUnit and Android dependencies. Tests see main's internals as Gradle would (-Xfriend-paths).
echo "kotlinc: detector-core main" >&2
"$KOTLINC_BIN" "${KFLAGS[@]}" -d "$OUT/main" $(find "$HERE/src/main/kotlin" -name '*.kt' | sort)
echo "kotlinc: detector-core tests" >&2
"$KOTLINC_BIN" "${KFLAGS[@]}" -Xfriend-paths="$OUT/main" -cp "$OUT/main:$JUNIT" -d "$OUT/test" $(find "$HERE/src/test/kotlin" -name '*.kt' | sort)

CLASSES=$(cd "$OUT/test" && find . -name '*Test.class' ! -name '*$*' | sed -e 's|^\./||' -e 's|\.class$||' -e 's|/|.|g' | sort)
[ -n "$CLASSES" ] || { echo "no test classes were compiled" >&2; exit 1; }
# src/test/resources goes on the classpath, as Gradle puts it (BenchmarkReportExampleTest reads it).
java -cp "$OUT/test:$HERE/src/test/resources:$OUT/main:$STDLIB:$JUNIT:$HAMCREST" org.junit.runner.JUnitCore $CLASSES
