package dev.featherface.core

/** A model output tensor as the runtime reports it: its index, name and shape. */
data class TensorInfo(val index: Int, val name: String, val shape: IntArray) {
    val lastDim: Int get() = shape.lastOrNull() ?: 0
    override fun equals(other: Any?) = other is TensorInfo && index == other.index && name == other.name && shape.contentEquals(other.shape)
    override fun hashCode() = (index * 31 + name.hashCode()) * 31 + shape.contentHashCode()
}

/** Which runtime output index holds loc, conf and landms, and how they were found. */
data class OutputBinding(val loc: Int, val conf: Int, val landms: Int, val byName: Boolean) {
    fun index(role: OutputRole) = when (role) {
        OutputRole.LOC -> loc
        OutputRole.CONF -> conf
        OutputRole.LANDMS -> landms
    }

    companion object {
        /**
         * Finds each output by the manifest's name (exact, or as the signature-key part of a runtime name
         * such as `serving_default_loc:0` / `StatefulPartitionedCall:loc`); if any is not found by name,
         * falls back to the last-dimension sizes 4 / 2 / 10, which must then be unambiguous.
         */
        fun resolve(tensors: List<TensorInfo>, config: DetectorConfig? = null): OutputBinding {
            val byName = OutputRole.values().map { role ->
                val wanted = config?.outputName(role) ?: role.manifestName
                tensors.filter { nameMatches(it.name, wanted) }.singleOrNull()?.index
            }
            if (byName.all { it != null } && byName.toSet().size == 3) {
                return OutputBinding(byName[0]!!, byName[1]!!, byName[2]!!, byName = true)
            }
            val byDim = OutputRole.values().map { role ->
                val matches = tensors.filter { it.lastDim == role.lastDim }
                when (matches.size) {
                    1 -> matches[0].index
                    0 -> throw IllegalArgumentException(
                        "no model output is named '${role.manifestName}' or has last dimension ${role.lastDim}; outputs: ${describe(tensors)}",
                    )
                    else -> throw IllegalArgumentException(
                        "outputs are not named loc/conf/landms and ${matches.size} have last dimension ${role.lastDim}; outputs: ${describe(tensors)}",
                    )
                }
            }
            return OutputBinding(byDim[0], byDim[1], byDim[2], byName = false)
        }

        internal fun nameMatches(runtimeName: String, wanted: String): Boolean {
            if (runtimeName == wanted) return true
            val base = runtimeName.substringBeforeLast(':').let { if (it.isEmpty()) runtimeName else it }
            if (base == wanted) return true
            val parts = runtimeName.split(':', '/', ';')
            return parts.any { it == wanted } || base.endsWith("_$wanted")
        }

        private fun describe(tensors: List<TensorInfo>) =
            tensors.joinToString { "${it.name}${it.shape.contentToString()}" }
    }
}
